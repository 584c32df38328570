"""Run real station processes (agents, ticks, web) against the test database."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import requests
from django.conf import settings
from django.db import connection

from recorders.tests.stream_server import closed_port
from station.embedded_db import database_url


# pg_stat_activity's application_name of the sessions of the processes a test starts (those that name none of their own)
CHILD_SESSIONS = "stationkeeper test child"


def database_env(**overrides) -> dict:
    """Environment for a child process that uses the (committed) test database."""
    return {**os.environ, "DATABASE_URL": database_url(connection.settings_dict), "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "PGAPPNAME": CHILD_SESSIONS,
            "PLAYOUT_CACHE_ROOT": str(Path(settings.MEDIA_ROOT).parent / "node-cache"),
            # no fixed ports (a test asks for its own) and the counts in the test's directory
            "METRICS_PORTS": "", "METRICS_DIR": str(Path(settings.MEDIA_ROOT).parent / "metrics"),
            "OUTBOUND_ALLOWED_NETWORKS": ",".join(settings.OUTBOUND_ALLOWED_NETWORKS),
            "PLAYOUT_HARBOR_PORTS": settings.PLAYOUT_HARBOR_PORTS,
            **{k: str(v) for k, v in overrides.items()}}


@contextlib.contextmanager
def empty_database() -> Iterator[dict]:
    """A database of its own, empty, on the test server, for processes that migrate it: yields their environment."""
    name = f"empty_{uuid.uuid4().hex[:8]}"
    admin_params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
    with psycopg.connect(**admin_params, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**os.environ, "DATABASE_URL": database_url({**connection.settings_dict, "NAME": name})}
    finally:
        with psycopg.connect(**admin_params, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def spawn_manage(*args: str, env: dict, host=None, log: Path | None = None) -> subprocess.Popen:
    """``manage.py args`` in a child process; on ``host`` (station.tests.hosts) if given; its output to ``log`` if
    given."""
    command = [sys.executable, "manage.py", *args]
    with open(log, "ab") if log else contextlib.nullcontext() as output:
        return subprocess.Popen(host.command(*command) if host else command, cwd=settings.BASE_DIR, env=env,
                                stdout=output, stderr=subprocess.STDOUT if log else None)


class WebServer:
    """Daphne serving the app (HTTP and websockets) on a fixed port, so it can be killed and brought back."""

    def __init__(self):
        self.port = closed_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self, **environment) -> None:
        """Start it with the test database's environment and ``environment`` on top; return once it answers."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "station.asgi:application"],
            env=database_env(**environment), cwd=settings.BASE_DIR,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout=30, message="Daphne to come up")

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).ok
        except requests.ConnectionError:
            return False

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def niceness_of_a_child() -> int:
    """The nice value a process started from the calling thread runs at."""
    return int(subprocess.run(["sh", "-c", "ps -o ni= -p $$"], capture_output=True, text=True, check=True).stdout)


def wait_until(predicate: Callable[[], object], *, timeout: float, interval: float = 0.1, message: str = ""):
    """Poll until predicate() is truthy and return its value; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")
        time.sleep(interval)


def wait_for_other_sessions_to_end(*, timeout: float = 5) -> None:
    """Give stopped child processes' sessions (``CHILD_SESSIONS``) a moment to leave the test database, so it can be
    dropped; at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND application_name = %s", [CHILD_SESSIONS])
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.1)
