import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.conf import settings

from station.tests.processes import empty_database


def test_healthz_answers(client):
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ready_on_a_migrated_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, dict]:
    import json

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
@pytest.mark.django_db
def test_readyz_says_not_ready_before_migrations_then_ready_after():
    """A real Daphne on an empty database answers 503 with the pending migrations, 200 once migrated."""
    with empty_database() as env:
        _readyz_before_and_after_migrating(env)


def _readyz_before_and_after_migrating(env: dict) -> None:
    port = _free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "station.asgi:application"],
        env=env, cwd=settings.BASE_DIR,
    )
    try:
        url = f"http://127.0.0.1:{port}/readyz"
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = _get(url)
                break
            except (OSError, ValueError):
                assert time.monotonic() < deadline, "daphne did not come up"
                time.sleep(0.2)
        assert status == 503
        assert body["reason"] == "migrations", body
        assert "recorders.0001_initial" in body["pending"]
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=settings.BASE_DIR, check=True)
        assert _get(url) == (200, {"status": "ok"})
    finally:
        web.terminate()
        web.wait(10)
