"""What a process needs before Django reads the settings, which only describe it.

Importing the settings starts nothing and writes nothing. Each entry point (manage.py,
station.asgi, the test plugin station.tests.startup, the benches) calls ``prepare()`` first.
"""

import os
import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
COMMAND_ROLES = {"qcluster": "jobs", "run_node": "node"}  # manage.py commands that are a process kind of their own
role = ""  # what this process is, set by prepare(): "web", "jobs" (a django-q2 cluster), "node" (an agent) or ""


def read_env_file() -> None:
    """Read ``.env`` into the environment; variables already set win."""
    if (BASE_DIR / ".env").exists():
        environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def var_dir() -> Path:
    return Path(environ.Env().str("STATION_VAR_DIR", default=str(BASE_DIR / "var")))


def metrics_dir() -> Path:
    return Path(environ.Env().str("METRICS_DIR", default=str(var_dir() / "metrics")))


def role_of(argv: list[str]) -> str:
    """The process kind a manage.py command line starts (COMMAND_ROLES), "" for any other command."""
    return COMMAND_ROLES.get(argv[1] if len(argv) > 1 else "", "")


def read_secret_key() -> str:
    """Return the dev install's generated key, or "" before ``prepare()`` made one."""
    key_file = var_dir() / "secret_key"
    return key_file.read_text().strip() if key_file.exists() else ""


def prepare(*, role: str = "") -> None:
    """Create var/ and the secret key; without DATABASE_URL, start the embedded server and set DATABASE_URL to it.

    DATABASE_URL goes into this process's environment, so its children use the same server
    without holding it (it stops when the last process that started it exits). ``role`` is
    the process kind the entry point starts ("web", "jobs", "node"), which decides where it
    counts its metrics (``_count_metrics_as``).
    """
    read_env_file()
    var = var_dir()
    (var / "static").mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing STATIC_ROOT
    if not os.environ.get("SECRET_KEY"):
        _create_secret_key(var / "secret_key")
    if not os.environ.get("DATABASE_URL"):
        from station import embedded_db

        os.environ["DATABASE_URL"] = embedded_db.database_url(embedded_db.start(var / "pg"))
    _count_metrics_as(role)


def _create_secret_key(key_file: Path) -> None:
    """Keep one generated key so sessions survive restarts of a dev install; never readable by others."""
    try:
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_urlsafe(50))


def _count_metrics_as(process_role: str) -> None:
    """Web processes, and the processes of one django-q2 cluster, count their metrics in a directory they share.

    That is prometheus_client's multiprocess mode, which the library reads from the environment
    when it is first imported (django-q2 imports it with Django's apps): so it is set here,
    before anything is. The web processes of a host share ``web`` (whichever one a scrape
    reaches answers for all); a cluster's main process and its forked workers ``jobs-<queue>``.
    A node agent, a command or a test run counts in its own memory (station.metrics).
    """
    global role
    role = process_role
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # inherited from a parent of another kind
    if role == "web":
        shared = "web"
    elif role == "jobs":
        from django.conf import settings  # only now: DATABASE_URL, which the settings read, is set above

        shared = f"jobs-{os.environ.get('Q_CLUSTER_NAME') or settings.Q_CLUSTER['cluster_name']}"
    else:
        return
    directory = metrics_dir() / shared
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
