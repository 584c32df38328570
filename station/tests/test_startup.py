"""Importing the settings starts nothing and writes nothing; the entry points prepare the process (issue 15)."""

import os
import stat
import subprocess
import sys

import psutil
from django.conf import settings

from station import startup

IMPORT_SETTINGS = """
import sys, psutil
import station.settings
print("pgserver" in sys.modules, len(psutil.Process().children(recursive=True)))
"""


def test_importing_the_settings_without_database_url_starts_no_server_and_creates_no_file(tmp_path):
    var = tmp_path / "var"
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "SECRET_KEY")}
    result = subprocess.run([sys.executable, "-c", IMPORT_SETTINGS], cwd=settings.BASE_DIR,
                            env={**env, "STATION_VAR_DIR": str(var)}, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "0"]  # pgserver not even imported, no child process
    assert not var.exists()
    started_there = [process for process in psutil.process_iter(["cmdline"])
                     if str(var) in " ".join(process.info["cmdline"] or [])]
    assert not started_there


def test_prepare_creates_var_and_one_private_secret_key_and_keeps_a_configured_database(tmp_path, monkeypatch):
    monkeypatch.setenv("STATION_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DATABASE_URL", "postgres://station@db.example/station")
    monkeypatch.delenv("SECRET_KEY", raising=False)

    startup.prepare()
    key = startup.read_secret_key()
    startup.prepare()

    assert (tmp_path / "var" / "static").is_dir()
    assert len(key) > 50 and startup.read_secret_key() == key  # kept across restarts
    assert stat.S_IMODE((tmp_path / "var" / "secret_key").stat().st_mode) == 0o600
    assert not (tmp_path / "var" / "pg").exists()
    assert os.environ["DATABASE_URL"] == "postgres://station@db.example/station"
