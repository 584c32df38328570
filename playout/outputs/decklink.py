"""SDI/Decklink: hardware bound to its host and driven outside the station's engine; a failure only alerts."""

from playout.outputs.base import Output
from station.models import Node


class DecklinkOutput(Output):
    name = "decklink"
    drives_engine = False
    hardware = True
    needs_capability = Node.Capability.DECKLINK


OUTPUT = DecklinkOutput()
