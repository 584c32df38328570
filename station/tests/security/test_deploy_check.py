"""`manage.py check --deploy` is clean with the production environment docs/security.md documents (issue 14)."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def production_environment() -> dict[str, str]:
    """docs/security.md, "Production environment"."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "station.example",
        "CSRF_TRUSTED_ORIGINS": "https://station.example",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_PROXY_SSL_HEADER": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
        "SESSION_COOKIE_SECURE": "true",
        "CSRF_COOKIE_SECURE": "true",
        "DATABASE_URL": os.environ["DATABASE_URL"],  # set for the tests by station.startup
    }


def run_deploy_check(environment: dict[str, str]) -> subprocess.CompletedProcess:
    keep = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG", "STATION_VAR_DIR")}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env={**keep, **environment}, capture_output=True, text=True, timeout=120)


def test_the_documented_production_environment_passes_the_deploy_check():
    result = run_deploy_check(production_environment())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_production_environment_is_documented():
    documented = (ROOT / "docs" / "security.md").read_text() + (ROOT / "README.md").read_text()
    for name in production_environment():
        assert f"`{name}`" in documented, name
