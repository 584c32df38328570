"""Engine processes (ffmpeg, Liquidsoap) the node agent spawns."""

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(death_signal: int = signal.SIGTERM):
    """A pre-exec hook: the kernel sends ``death_signal`` to the child if its agent dies, so no orphan stays on air.

    The child also gets its own session, so a terminal's Ctrl-C reaches only the agent,
    which then stops its engines gracefully.
    """

    def prepare() -> None:
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, death_signal)
        except OSError:
            pass
        os.setsid()

    return prepare


def kill_strays(marker: str) -> int:
    """Kill leftover engine processes whose command line contains ``marker`` (an engine that outlived its agent)."""
    import psutil

    killed = 0
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid != os.getpid() and any(marker == part for part in process.info["cmdline"] or []):
            try:
                process.kill()
                process.wait(5)
                killed += 1
            except psutil.Error:
                pass
    return killed
