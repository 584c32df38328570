"""No operator's row and no crashed process stops the station (issue 14, confirmed 4 and 5).

A non-integer port crashed the node agent, and run_station then stopped web, API and jobs; an
RRULE that never matched stalled the agent until the health job took a healthy channel off air.
Now one bad row fails its own channel or window (test_engine_script, test_recorder_sources), the
agent's prober reports engines whatever its loop is doing, and run_station restarts a child that
died while the others keep serving.
"""

import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from playout.models import Channel, PlaylistItem, ScheduledItem
from playout.tests.test_engine import _channel_on_air, _tone
from station.locks import LockKind
from station.models import Alert
from station.tests import factories
from station.tests.processes import database_env, spawn_manage, stop, wait_until

FAST = {"PLAYOUT_PROBE_SECONDS": 0.5, "AGENT_HEARTBEAT_SECONDS": 0.5}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_agent_whose_loop_is_stuck_keeps_its_healthy_engines_on_air(media_root):
    with _channel_on_air(media_root, **FAST) as (channel, _url, _):
        health = spawn_manage("tick", "--job", "playout.health", "--for", "60", env=database_env(**FAST))
        params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
        holder = psycopg.connect(**params)
        try:
            # The agent's next timeline rebuild waits on this lock: its loop is stuck, as a slow rule made it.
            holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LockKind.TIMELINE, channel.pk])
            news = factories.PlaylistFactory(studio=channel.studio, name="News")
            PlaylistItem.objects.create(playlist=news, asset=_tone(channel.studio, media_root, 550, 2))
            slot = timezone.now() + timedelta(minutes=2)
            instance = factories.ShowInstanceFactory(show__channel=channel, show__playlist=news, start_at=slot,
                                                     end_at=slot + timedelta(seconds=2))
            time.sleep(8)  # four times the failover threshold (3 missed 0.5 s probes)
            assert not ScheduledItem.objects.filter(instance=instance).exists()  # the loop really was stuck
            stuck = Channel.objects.get(pk=channel.pk)
        finally:
            holder.rollback()
            holder.close()
            stop(health)
        wait_until(lambda: ScheduledItem.objects.filter(instance=instance).exists(), timeout=10,
                   message="the loop going on once the lock is gone")

    assert (stuck.status, stuck.node_id, stuck.restart_count) == (Channel.Status.RUNNING, channel.node_id,
                                                                  channel.restart_count)
    assert not Alert.objects.filter(code__in=["channel_failed_over", "channel_no_failover"]).exists()


LAUNCHED = """
import os, sys, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "station.settings")
django.setup()
from station import launcher
log = sys.argv[1]
def child(name, code, **options):
    return launcher.Child(name, [sys.executable, "-c", f"open({log!r}, 'a').write({name!r} + chr(10)); " + code],
                          **options)
launcher.run([child("steady", "import time; time.sleep(60)"), child("crashing", "raise SystemExit(3)"),
              child("replaced", "raise SystemExit(3)", final_exit_codes={3: "another agent runs as node 'a'"})],
             ready_url="http://127.0.0.1:9/", on_ready=lambda: None)
"""


@pytest.mark.slow
def test_run_station_starts_a_crashed_child_again_with_a_growing_wait_and_the_others_keep_serving(tmp_path):
    """…except a child whose exit says another process took its place (an agent replaced as its node)."""
    log = tmp_path / "starts.log"
    launched = subprocess.Popen([sys.executable, "-c", textwrap.dedent(LAUNCHED), str(log)], cwd=settings.BASE_DIR,
                                env=database_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: log.exists() and log.read_text().count("crashing") >= 3, timeout=20,
                   message="the crashing child started three times")
        assert launched.poll() is None  # the launcher goes on
    finally:
        launched.terminate()
        output = launched.communicate(timeout=30)[0]

    starts = log.read_text().split()
    assert starts.count("steady") == 1  # never stopped for the other's sake
    assert starts.count("replaced") == 1
    assert ("replaced exited with code 3 (another agent runs as node 'a'); not starting it again." in output)
    assert "crashing exited with code 3; starting it again in 1 s" in output
    assert "crashing exited with code 3; starting it again in 2 s" in output
