"""Engine processes (ffmpeg, Liquidsoap) the node agent spawns."""

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Run in the child before exec: the kernel SIGTERMs it if its agent dies, so no orphan stays on air.

    The child also gets its own session, so a terminal's Ctrl-C reaches only the agent,
    which then stops its engines gracefully.
    """
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
    os.setsid()
