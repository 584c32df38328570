"""The systemd units shipped in deploy/ are units systemd accepts, and they run every kind of process the station has."""

import os
import shutil
import subprocess
from pathlib import Path

from django.conf import settings

from station import launcher, queues
from station.management.commands.backup import Command as BackupCommand

DEPLOY = Path(settings.BASE_DIR) / "deploy"
INSTALLED_AT = "/srv/stationkeeper"


def _units_here(tmp_path: Path) -> Path:
    """The units as installed from this checkout (its .venv and manage.py where /srv/stationkeeper stands)."""
    units = tmp_path / "units"
    shutil.copytree(DEPLOY, units)
    for path in units.rglob("*"):
        if path.is_file():
            path.write_text(path.read_text().replace(INSTALLED_AT, str(settings.BASE_DIR)))
    return units


def _wanted_by_the_target() -> list[str]:
    lines = (DEPLOY / "stationkeeper.target").read_text().splitlines()  # Wants= may stand several times
    return [unit for line in lines if line.startswith("Wants=") for unit in line.removeprefix("Wants=").split()]


def test_systemd_accepts_every_unit_without_a_word(tmp_path):
    units = _units_here(tmp_path)

    checked = subprocess.run(
        ["systemd-analyze", "verify", *(str(units / name) for name in _wanted_by_the_target()),
         str(units / "stationkeeper.target"), str(units / "stationkeeper-backup.timer")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"},
    )

    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")  # a misspelt setting is only a warning


def test_the_target_starts_what_run_station_starts():
    wanted = _wanted_by_the_target()
    unit = {path.name: path.read_text() for path in DEPLOY.glob("*.service")}

    assert {f"stationkeeper-jobs@{queue}.service" for queue in queues.QUEUES} <= set(wanted)  # a cluster per queue
    [web] = launcher.web_processes(host="127.0.0.1", port=8000, count=1)
    assert "stationkeeper-web.socket" in wanted
    assert f"daphne --proxy-headers --fd 3 {web.argv[-1]}" in unit["stationkeeper-web@.service"]
    cluster = launcher.queue_cluster(queues.PLAYOUT)
    assert f"manage.py {cluster.argv[-1]}" in unit["stationkeeper-jobs@.service"]
    assert "Environment=Q_CLUSTER_NAME=%i" in unit["stationkeeper-jobs@.service"]
    assert "stationkeeper-node.service" in wanted and "manage.py run_node --name %H" in unit["stationkeeper-node.service"]


def test_the_backup_timer_runs_the_backup_command_with_options_it_has():
    [exec_start] = [line for line in (DEPLOY / "stationkeeper-backup.service").read_text().splitlines()
                    if line.startswith("ExecStart=")]
    program, manage, command, *arguments = exec_start.removeprefix("ExecStart=").split()

    assert (program, manage, command) == (f"{INSTALLED_AT}/.venv/bin/python", "manage.py", "backup")
    options = BackupCommand().create_parser("manage.py", "backup").parse_args(arguments)
    assert options.keep >= 1
