"""Run real station processes (agents, ticks, web) against the test database."""

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg

from django.conf import settings
from django.db import connection

from station.embedded_db import database_url


def database_env(**overrides) -> dict:
    """Environment for a child process that uses the (committed) test database."""
    return {**os.environ, "DATABASE_URL": database_url(connection.settings_dict), "MEDIA_ROOT": str(settings.MEDIA_ROOT),
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


def spawn_manage(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env)


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
