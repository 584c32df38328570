"""Harbor: Liquidsoap serves the stream itself, on a port of the station's range."""

from django.conf import settings as django_settings

from playout.outputs.base import BITRATE, MOUNT, Output, Setting, mp3_encoder, whole_number


def harbor_ports() -> range:
    """Return the ports harbor outputs may listen on: a range the station opens to listeners (PLAYOUT_HARBOR_PORTS)."""
    low, _sep, high = django_settings.PLAYOUT_HARBOR_PORTS.partition("-")
    return range(int(low), int(high or low) + 1)


def _port_for_listeners(value):
    ports = harbor_ports()
    return whole_number(ports.start, ports.stop - 1)(value)


class HarborOutput(Output):
    name = "harbor"
    # The port is always written out: the database keeps two channels off one port (playout.models).
    schema = {"port": Setting(_port_for_listeners), "mount": MOUNT, "bitrate": BITRATE}

    def liquidsoap(self, settings, source, liq_string, *, file_path=None):
        return (f"output.harbor({mp3_encoder(settings['bitrate'])}, port={int(settings['port'])}, "
                f"mount={liq_string(settings['mount'])}, {source})")


OUTPUT = HarborOutput()
