"""Engine processes (ffmpeg, Liquidsoap) the node agent spawns."""

import grp
import io
import logging
import os
import pwd
import signal
import stat
import subprocess
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from threading import Thread

from django.conf import settings

logger = logging.getLogger(__name__)

# The kernel sends the parent-death signal when the *thread* that started a child ends, not its
# process: engines are started from this one thread, which lives as long as the agent, so an
# engine started on behalf of a short-lived thread (a run's pump opening its file) outlives it.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-spawner")
STOP_GRACE_SECONDS = 5
TAIL_LINES = 20
BACKGROUND_NICENESS = 10  # an agent's after-the-fact work (finishing files): below its loop's and its engines' priority


def yield_to_engines() -> None:
    """The calling thread, and the processes it starts, yield the CPU to the agent's loop and its engines: on Linux a
    thread has its own nice value, and the processes it starts inherit it."""
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)


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


_warned: set[str] = set()


@cache
def _engine_account() -> tuple[int, int, tuple[int, ...]] | None:
    """(uid, gid, groups) engines run as: ENGINE_USER, when the agent runs as root; None: as the agent."""
    if os.geteuid() != 0 or not settings.ENGINE_USER:
        return None
    try:
        user = pwd.getpwnam(settings.ENGINE_USER)
    except KeyError:
        logger.warning("ENGINE_USER %s does not exist: engines run as root", settings.ENGINE_USER)
        return None
    # capture devices belong to the audio group on Debian
    groups = tuple(group.gr_gid for group in grp.getgrall() if group.gr_name == "audio")
    return user.pw_uid, user.pw_gid, groups


def _reachable(uid: int, gid: int, groups: tuple[int, ...], directory: Path) -> bool:
    """Whether the account may pass through every directory down to ``directory`` (by mode bits; no process spawned,
    since engines start on the agent's loop)."""
    for step in (*reversed(directory.parents), directory):
        try:
            mode = step.stat()
        except OSError:
            return False
        if mode.st_uid == uid:
            allowed = mode.st_mode & stat.S_IXUSR
        elif mode.st_gid == gid or mode.st_gid in groups:
            allowed = mode.st_mode & stat.S_IXGRP
        else:
            allowed = mode.st_mode & stat.S_IXOTH
        if not allowed:
            return False
    return True


def engine_command(argv: list[str], *, writes: tuple[Path, ...], reads: tuple[Path, ...] = (),
                   death_signal: int | None = None) -> list[str]:
    """``argv`` as an engine (ffmpeg, Liquidsoap) runs: without root, owning the directories it ``writes``, and sent
    ``death_signal`` by the kernel when its agent dies, so no orphan stays on air.

    Engines need no privilege. When the agent runs as root they run as ENGINE_USER, provided
    that account can reach every directory they use; where it can't (a tree under a private
    home, say) they run as the agent, with a warning saying which directory to open up.

    setpriv (util-linux) changes the account and asks for the signal in the child, just before the
    engine: asked of Popen (a user, a pre-exec hook), the same makes Python fork the agent instead
    of vfork it, which copies its page tables: 8-25 ms a start for a 100-150 MB agent (~2 ms now),
    every start in turn on the spawning thread.
    """
    options = []
    if (account := _account_reaching(writes, reads)) is not None:
        uid, gid, groups = account
        options += [f"--reuid={uid}", f"--regid={gid}",
                    f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"]
    if death_signal is not None:
        options.append(f"--pdeathsig={signal.Signals(death_signal).name}")
    return ["setpriv", *options, "--", *argv] if options else argv


def _account_reaching(writes: tuple[Path, ...], reads: tuple[Path, ...]) -> tuple[int, int, tuple[int, ...]] | None:
    """The engine account, if engines run as one and it can reach the directories (its own: those it ``writes``)."""
    account = _engine_account()
    if account is None:
        return None
    uid, gid, groups = account
    blocked = [str(path) for path in (*(path.parent for path in writes), *reads) if not _reachable(uid, gid, groups, path)]
    if blocked:
        if blocked[0] not in _warned:  # once per directory, not once per engine
            _warned.add(blocked[0])
            logger.warning("engines run as root: %s can't reach %s (ENGINE_USER)", settings.ENGINE_USER, ", ".join(blocked))
        return None
    for path in writes:
        if path.exists():  # a file an engine of the agent's own user left behind is handed over too
            os.chown(path, uid, gid)
    return account


def _lines(stream) -> io.TextIOWrapper:
    return io.TextIOWrapper(stream, encoding="utf-8", errors="replace")


class EngineProcess:
    """One engine process: run as the engine account, ended with its agent, its last lines of output kept.

    ``stderr`` is ``subprocess.PIPE`` (its non-blank lines are kept here) or ``subprocess.STDOUT``
    (the subclass reads both streams and keeps what it wants with ``keep``). Standard output is read
    by ``read_stdout`` on a thread of its own: by default line by line into ``read_output``; an engine
    whose output is audio reads its bytes there. Standard input, when a pipe, takes bytes.
    """

    stop_signal = signal.SIGTERM  # what asks the engine to finish; it is killed after STOP_GRACE_SECONDS

    def __init__(self, argv: list[str], *, death_signal: int, writes: tuple[Path, ...], reads: tuple[Path, ...] = (),
                 stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd: Path | None = None):
        self.name = argv[0]
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.stop_sent = False
        # its own session: a terminal's Ctrl-C reaches only the agent, which then stops its engines gracefully
        self.process = _SPAWNER.submit(
            subprocess.Popen, engine_command(argv, writes=writes, reads=reads, death_signal=death_signal),
            stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, cwd=cwd, start_new_session=True,
        ).result()
        self.reader = Thread(target=self.read_stdout, daemon=True)
        self.reader.start()
        if stderr == subprocess.PIPE:
            Thread(target=self._drain_stderr, daemon=True).start()

    def read_stdout(self) -> None:
        """Read standard output until it closes."""
        for line in _lines(self.process.stdout):
            self.read_output(line)

    def read_output(self, line: str) -> None:
        """Take one line of standard output."""
        raise NotImplementedError

    def keep(self, line: str) -> None:
        """Keep one line among the last words."""
        self.tail.append(line)

    def _drain_stderr(self) -> None:
        for line in _lines(self.process.stderr):
            if line.strip():
                self.keep(line.strip())

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def last_lines(self, count: int) -> list[str]:
        return list(self.tail)[-count:]

    def exit_reason(self) -> str:
        """Wait for the exit; say why from the last line kept, else from the exit code."""
        self.process.wait(timeout=5)
        time.sleep(0.05)  # let the reading thread take the last lines
        lines = self.last_lines(1)
        return lines[0] if lines else f"{self.name} exited with code {self.process.returncode}"

    def request_stop(self) -> None:
        """Send the stop signal now, once; don't wait.

        Once: a second SIGINT makes ffmpeg quit at once, without finishing its file (an MP3 with no
        frame count, a WAV with no sizes, the last packets lost).
        """
        if self.alive() and not self.stop_sent:
            self.stop_sent = True
            self.process.send_signal(self.stop_signal)

    def stop(self) -> None:
        """Stop gracefully (the signal only if not sent yet) and wait, killing it after STOP_GRACE_SECONDS."""
        if not self.alive():
            return
        self.request_stop()
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
