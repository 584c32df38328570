"""The embedded PostgreSQL server used when no DATABASE_URL is configured.

pgserver runs a real PostgreSQL 16 from a Python wheel. Its data lives under
``var/pg`` (kept short: the server's Unix socket lives there) and is reused
across runs. Every process that starts it registers as a handle; the server
stops when the last handle exits. The entry points start it (station.startup)
and set ``DATABASE_URL`` to its socket, so their children never hold a handle.
"""

from pathlib import Path
from urllib.parse import quote

DATABASE_NAME = "stationkeeper"


def start(data_dir: Path) -> dict:
    """Start (or attach to) the embedded server and return Django database settings."""
    import warnings

    # pgserver looks up XDG_RUNTIME_DIR for its lock file; the /tmp fallback is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    socket_dir = str(server.get_postmaster_info().socket_dir)
    _ensure_database(server)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": socket_dir,
        "PORT": "",
    }


def _ensure_database(server) -> None:
    import psycopg

    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def database_url(settings_dict: dict) -> str:
    """Render Django database settings as a DATABASE_URL for child processes."""
    host = settings_dict.get("HOST") or ""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    if host.startswith("/"):
        # django-environ's form for a Unix socket: the socket directory is the path before the name.
        return f"postgres://{credentials}/{host}/{settings_dict['NAME']}"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{settings_dict['NAME']}"
