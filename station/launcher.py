"""Run the whole station on one machine: web (Daphne processes), django-q2 and node agents.

Every child inherits this process's DATABASE_URL (manage.py set it to the embedded
PostgreSQL when none was configured, station.startup), so one server serves all.
A child that exits is started again after a wait that grows while it keeps
failing (1 s up to 30 s) and starts over once it ran a minute; the others go on
serving meanwhile, so nothing one process meets (a bad row, a crash) stops the station.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from django.conf import settings

from station import queues
from station.agent import REPLACED_EXIT_STATUS

STOP_GRACE_SECONDS = 10
RESTART_BACKOFF_SECONDS = (1, 2, 5, 10, 30)
STABLE_SECONDS = 60  # a child that ran this long before it exited was not crash-looping
PERSISTENT_CONN_MAX_AGE = 60
WEB_POOL_SIZE = 8  # database connections per web process: one serves the views, the rest dashboards' look-ups


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    pass_fds: tuple[int, ...] = ()  # descriptors the child inherits (the web tier's listening socket)
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0  # exits in a row, each after less than STABLE_SECONDS
    restart_at: float | None = None  # when an exited child starts again
    final_exit_codes: dict[int, str] = field(default_factory=dict)  # exits that say "do not start me again": why
    retired: bool = False

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env={**os.environ, **self.env}, cwd=settings.BASE_DIR, pass_fds=self.pass_fds)
        self.started_at, self.restart_at = time.monotonic(), None

    def schedule_restart(self) -> float:
        """Note the child's exit and when it starts again; return the wait."""
        if time.monotonic() - self.started_at >= STABLE_SECONDS:
            self.failures = 0
        delay = RESTART_BACKOFF_SECONDS[min(self.failures, len(RESTART_BACKOFF_SECONDS) - 1)]
        self.failures += 1
        self.restart_at = time.monotonic() + delay
        return delay


def station_processes(*, host: str, port: int, node: str) -> list[Child]:
    manage = str(Path(settings.BASE_DIR) / "manage.py")
    return [
        *web_processes(host=host, port=port, count=settings.WEB_PROCESSES),
        *(queue_cluster(queue) for queue in queues.QUEUES),
        # Another process runs as this node now; starting this one again would take the node back and forth.
        Child("node", [sys.executable, manage, "run_node", "--name", node],
              final_exit_codes={REPLACED_EXIT_STATUS: f"another agent runs as node {node!r}"}),
    ]


def web_processes(*, host: str, port: int, count: int) -> list[Child]:
    """``count`` Daphne processes accepting connections on one listening socket.

    Daphne runs Django's synchronous views one at a time per process, so a request waits
    behind every other one in flight there; more processes serve them side by side, on
    every core. The kernel hands each new connection to one of them. Each keeps its own
    hub of dashboard events (station.event_relay), so every socket gets every event, and a
    pool of database connections (a new connection per request would cost more than the request).
    """
    # Behind a reverse proxy, the client's address is the one the proxy names (X-Forwarded-For): the public
    # addresses' limits count listeners, not the proxy. Only then: a client could name any address otherwise.
    daphne = [sys.executable, "-m", "daphne", *(["--proxy-headers"] if settings.WEB_PROXY_HEADERS else [])]
    env = {"DATABASE_POOL_SIZE": os.environ.get("DATABASE_POOL_SIZE", str(WEB_POOL_SIZE))}
    if count <= 1 or ":" in host:  # Daphne adopts IPv4 sockets only; an IPv6 address gets one process
        return [Child("web", [*daphne, "-b", host, "-p", str(port), "station.asgi:application"], env=env)]
    listener = socket.create_server((host, port), backlog=1024)
    descriptor = listener.detach()
    os.set_inheritable(descriptor, True)
    return [Child(f"web {n}", [*daphne, "--fd", str(descriptor), "station.asgi:application"], env=env,
                  pass_fds=(descriptor,))
            for n in range(1, count + 1)]


def queue_cluster(queue: str) -> Child:
    """A django-q2 cluster for one queue; ingest runs at a lower CPU priority so its floods yield to playout.

    Its workers keep their database connections between jobs (CONN_MAX_AGE, unless set): a new
    PostgreSQL backend per job costs more CPU than a short download job itself.
    """
    argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "qcluster"]
    if queue == queues.INGEST:
        argv = ["nice", "-n", "10", *argv]
    return Child(f"{queue} jobs", argv,
                 env={"Q_CLUSTER_NAME": queue, "CONN_MAX_AGE": os.environ.get("CONN_MAX_AGE", str(PERSISTENT_CONN_MAX_AGE))})


def run(children: list[Child], *, ready_url: str, on_ready) -> int:
    """Start the children, call on_ready once ready_url answers 200, and keep them running until a signal."""
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    for child in children:
        child.start()
    announced = False
    while not stopping:
        for child in children:
            if child.retired:
                continue
            if child.restart_at is not None:
                if time.monotonic() >= child.restart_at:
                    print(f"[stationkeeper] starting {child.name} again.", flush=True)
                    child.start()
                continue
            code = child.process.poll()
            if code in child.final_exit_codes:
                child.retired = True
                print(f"[stationkeeper] {child.name} exited with code {code} ({child.final_exit_codes[code]}); "
                      "not starting it again.", flush=True)
            elif code is not None:
                delay = child.schedule_restart()
                print(f"[stationkeeper] {child.name} exited with code {code}; starting it again in {delay} s.", flush=True)
        if not announced and _answers(ready_url):
            on_ready()
            announced = True
        time.sleep(0.2)
    _stop(children)
    return 0


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(children: list[Child]) -> None:
    descendants = []
    for child in children:
        if child.process and child.process.poll() is None:
            with contextlib.suppress(psutil.Error):
                descendants += psutil.Process(child.process.pid).children(recursive=True)
            child.process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
    # A django-q2 worker busy in a periodic loop outlives its stopped cluster; its lock goes with it.
    for process in descendants:
        with contextlib.suppress(psutil.Error):
            process.kill()
