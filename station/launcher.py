"""Run the whole station on one machine: web (Daphne), django-q2 and node agents.

This process holds the embedded PostgreSQL (when DATABASE_URL is unset) and
hands its address to every child as DATABASE_URL, so one server serves all.
If any child exits, the rest are stopped: a half-running station is worse than
a stopped one that says why.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from django.conf import settings
from django.db import connection

from station import queues
from station.embedded_db import database_url

STOP_GRACE_SECONDS = 10
WORKER_CONN_MAX_AGE = 60


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None


def station_processes(*, host: str, port: int, node: str) -> list[Child]:
    manage = str(Path(settings.BASE_DIR) / "manage.py")
    python = sys.executable
    return [
        Child("web", [python, "-m", "daphne", "-b", host, "-p", str(port), "station.asgi:application"]),
        *(queue_cluster(queue) for queue in queues.QUEUES),
        Child("node", [python, manage, "run_node", "--name", node]),
    ]


def queue_cluster(queue: str) -> Child:
    """A django-q2 cluster for one queue; ingest runs at a lower CPU priority so its floods yield to playout.

    Its workers keep their database connections between jobs (CONN_MAX_AGE, unless set):
    a new PostgreSQL backend per job costs more CPU than a short download job itself.
    """
    argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "qcluster"]
    if queue == queues.INGEST:
        argv = ["nice", "-n", "10", *argv]
    return Child(f"{queue} jobs", argv,
                 env={"Q_CLUSTER_NAME": queue, "CONN_MAX_AGE": os.environ.get("CONN_MAX_AGE", str(WORKER_CONN_MAX_AGE))})


def run(children: list[Child], *, ready_url: str, on_ready) -> int:
    """Start the children, call on_ready once ready_url answers 200, and supervise until a signal or an exit."""
    # A configured DATABASE_URL passes through untouched (with its options); the embedded server's socket is handed on.
    env = {**os.environ, "DATABASE_URL": os.environ.get("DATABASE_URL") or database_url(connection.settings_dict)}
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    for child in children:
        child.process = subprocess.Popen(child.argv, env={**env, **child.env}, cwd=settings.BASE_DIR)
    announced = False
    exit_code = 0
    while not stopping:
        for child in children:
            code = child.process.poll()
            if code is not None:
                print(f"[stationkeeper] {child.name} exited with code {code}; stopping the station.", flush=True)
                exit_code = code or 1
                stopping = True
        if not announced and not stopping and _answers(ready_url):
            on_ready()
            announced = True
        time.sleep(0.2)
    _stop(children)
    return exit_code


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
