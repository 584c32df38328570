"""An install from before the checks upgrades without losing its channels or stopping at a constraint.

Rows the old code accepted (a harbor with no port, two on one port, a file output's path, a
segment of 0 s, a two-hour pre-roll, a window ending in 9999, a lavfi tone) are brought within
the new rules by the migrations, before their constraints are added.
"""

import json
import subprocess
import sys

import pytest
from django.conf import settings

from station.tests.processes import empty_database

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

OLD_ROWS = """
import json
from django.db import connection
c = connection.cursor()
c.execute("INSERT INTO station_studio (name, slug, time_zone, created_at) VALUES ('S', 's', 'UTC', now()) RETURNING id")
studio = c.fetchone()[0]
for n, (output, settings) in enumerate(json.loads(%r)):
    c.execute("INSERT INTO playout_channel (studio_id, name, slug, output_type, output_settings, status, paused, "
              "restart_count, error_message, created_at, updated_at) VALUES (%%s, %%s, %%s, %%s, %%s::jsonb, 'stopped', "
              "false, 0, '', now(), now())", [studio, f"c{n}", f"c{n}", output, json.dumps(settings)])
c.execute("INSERT INTO recorders_recorder (studio_id, name, source_url, output_format, segment_seconds, pre_roll_seconds, "
          "post_roll_seconds, enabled, created_at, updated_at) VALUES (%%s, 'r', 'lavfi:sine=frequency=440', 'mp3', 0, 7200, "
          "0, true, now(), now()) RETURNING id", [studio])
c.execute("INSERT INTO recorders_recorderschedule (recorder_id, name, start_at, end_at, recurrence, rrule, skip_dates, "
          "status, error_message, claimed_by, created_at, updated_at) VALUES (%%s, 'w', '2027-01-01', "
          "'9999-12-31T23:59:59Z', 'none', '', '{1999-01-01,2030-01-01}', 'pending', '', '', now(), now())",
          [c.fetchone()[0]])
"""
READ_BACK = """
import json
from playout.models import Channel
from recorders.models import Recorder, RecorderSchedule
print(json.dumps({
    "channels": [[c.output_type, c.output_settings, c.error_message] for c in Channel.objects.order_by("pk")],
    "recorders": [[r.source_url, r.segment_seconds, r.pre_roll_seconds] for r in Recorder.objects.all()],
    "windows": [[w.status, w.end_at.isoformat(), [str(d) for d in w.skip_dates]] for w in RecorderSchedule.objects.all()],
}))
"""
CHANNELS = [["harbor", {}], ["harbor", {"port": 8100}], ["harbor", {"port": "8100", "mount": "x"}],
            ["file", {"path": "/etc/cron.d/x"}], ["icecast", {"host": "stream.example.org"}]]


def test_rows_the_old_code_accepted_are_brought_within_the_rules_by_the_migrations():
    with empty_database() as env:
        def manage(*args):
            return subprocess.run([sys.executable, "manage.py", *args], env=env, cwd=settings.BASE_DIR,
                                  capture_output=True, text=True, check=True).stdout

        for app, migration in (("station", "0006"), ("playout", "0005"), ("recorders", "0003")):
            manage("migrate", app, migration, "-v0")
        manage("shell", "-c", OLD_ROWS % json.dumps(CHANNELS))
        manage("migrate", "-v0")
        after = json.loads(manage("shell", "-c", READ_BACK).strip().splitlines()[-1])

    assert [output for _, output, _ in after["channels"]] == [
        {"port": 8100}, {"port": 8101}, {"port": 8102, "mount": "x"}, {},
        {"host": "stream.example.org", "password": "hackme"}]
    assert "moved this channel's harbor from port 8100 to 8101" in after["channels"][1][2]
    assert after["recorders"] == [["tone:440", 10, 3600]]
    assert after["windows"] == [["failed", "2200-01-01T00:00:00+00:00", ["2030-01-01"]]]
