"""What a process needs before Django reads the settings, which only describe it.

Importing the settings starts nothing and writes nothing. Each entry point (manage.py,
station.asgi, the test plugin station.tests.startup, the benches) calls ``prepare()`` first.
"""

import os
import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent


def read_env_file() -> None:
    """Read ``.env`` into the environment; variables already set win."""
    if (BASE_DIR / ".env").exists():
        environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def var_dir() -> Path:
    return Path(environ.Env().str("STATION_VAR_DIR", default=str(BASE_DIR / "var")))


def read_secret_key() -> str:
    """Return the dev install's generated key, or "" before ``prepare()`` made one."""
    key_file = var_dir() / "secret_key"
    return key_file.read_text().strip() if key_file.exists() else ""


def prepare() -> None:
    """Create var/ and the secret key; without DATABASE_URL, start the embedded server and set DATABASE_URL to it.

    DATABASE_URL goes into this process's environment, so its children use the same server
    without holding it (it stops when the last process that started it exits).
    """
    read_env_file()
    var = var_dir()
    (var / "static").mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing STATIC_ROOT
    if not os.environ.get("SECRET_KEY"):
        _create_secret_key(var / "secret_key")
    if not os.environ.get("DATABASE_URL"):
        from station import embedded_db

        os.environ["DATABASE_URL"] = embedded_db.database_url(embedded_db.start(var / "pg"))


def _create_secret_key(key_file: Path) -> None:
    """Keep one generated key so sessions survive restarts of a dev install; never readable by others."""
    try:
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_urlsafe(50))
