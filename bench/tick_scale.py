"""The recorder tick at scale: a pass over 1,000 due windows, and an idle pass, among 1,000,000 finished ones.

- data: 100 recorders; 10,000 finished (completed) windows each, every one with its recording session and
  asset, as a year of a busy station leaves them; then 1,000 windows whose start passed with no agent to
  claim them (10 per recorder, the last of each still open), as an outage leaves them.
- ours: `recorders.services.housekeeping`, the pass the tick runs every TICK_INTERVAL_SECONDS: one pass
  handles the 1,000 (missed, or failed while still open, with their alerts and events); then 20 idle
  passes (nothing to do), their median.
- baseline: the seed's tick SQL (shared/seeds/003: due starts, due stops, cancelled-while-running, stale
  live assets) on the same data, each statement in a transaction rolled back; its pass with the 1,000
  due, and idle.
- peak RSS of this process (the tick runs in it) and the database's size.

Run: .venv/bin/python bench/tick_scale.py   (starts the embedded PostgreSQL itself)
"""

import json
import os
import statistics
import sys
import time
from datetime import timedelta

from bench_support import ROOT, RssSampler, fresh_database_url

sys.path.insert(0, str(ROOT))
RECORDERS, FINISHED_PER_RECORDER, DUE_PER_RECORDER, IDLE_PASSES = 100, 10_000, 10, 20
GOAL_DUE_SECONDS, GOAL_IDLE_MS = 1.0, 10.0

SEED_TICK = [  # shared/seeds/003, on our tables (its `recorders.status = 'recording'` is our open session)
    """UPDATE recorders_recorderschedule SET status = 'starting', updated_at = NOW() WHERE id IN (
         SELECT id FROM recorders_recorderschedule WHERE status = 'pending' AND start_at <= NOW() AND end_at > NOW()
         ORDER BY start_at ASC FOR UPDATE SKIP LOCKED) RETURNING *""",
    """UPDATE recorders_recorderschedule SET status = 'stopping', updated_at = NOW() WHERE id IN (
         SELECT id FROM recorders_recorderschedule WHERE status = 'running' AND end_at <= NOW()
         ORDER BY end_at ASC FOR UPDATE SKIP LOCKED) RETURNING *""",
    """SELECT s.* FROM recorders_recorderschedule s JOIN recorders_recordingsession r ON r.schedule_id = s.id
       WHERE s.status = 'cancelled' AND r.status = 'recording' AND s.updated_at > NOW() - INTERVAL '5 minutes'""",
    """UPDATE ingest_mediaasset SET status = 'error', updated_at = NOW()
       WHERE status = 'live' AND created_at < NOW() - ('120' || ' minutes')::INTERVAL RETURNING id, title""",
]


def _load(connection, studio_id: int, recorder_ids: list[int]) -> None:
    """The finished windows (with sessions and assets) and the due ones, written by the database itself."""
    finished = RECORDERS * FINISHED_PER_RECORDER
    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE TEMP TABLE bench_recorders AS SELECT row_number() OVER (ORDER BY id) - 1 AS n, id
            FROM recorders_recorder WHERE id = ANY(%s)""", [recorder_ids])
        # Window g: recorder g % 100, the (g / 100)-th 30-minute slot back from two hours ago.
        cursor.execute("""
            INSERT INTO recorders_recorderschedule (id, created_at, updated_at, start_at, end_at, recurrence, rrule,
                skip_dates, name, status, error_message, claimed_by, recorder_id, series_start_at, series_end_at)
            SELECT g, now(), now(), w.start_at, w.start_at + interval '25 minutes', 'none', '', '{}', 'News ' || g,
                   'completed', '', 'agent', r.id, w.start_at, w.start_at + interval '25 minutes'
            FROM generate_series(1, %s) g
            JOIN bench_recorders r ON r.n = g %% %s
            CROSS JOIN LATERAL (SELECT now() - interval '2 hours' - (g / %s) * interval '30 minutes' AS start_at) w
            """, [finished, RECORDERS, RECORDERS])
        cursor.execute("""
            INSERT INTO ingest_mediaasset (id, created_at, updated_at, title, file, status, origin, checksum,
                format_name, error_message, studio_id, size_bytes, duration_seconds)
            SELECT g, now(), now(), 'News ' || g, 'recordings/' || g || '.mp3', 'ready', 'recording',
                   md5(g::text) || md5(g::text), 'mp3', '', %s, 36000000, 1500
            FROM generate_series(1, %s) g""", [studio_id, finished])
        cursor.execute("""
            INSERT INTO recorders_recordingsession (id, created_at, updated_at, status, started_at, ended_at, gaps,
                levels, error_message, recorder_id, schedule_id, asset_id)
            SELECT s.id, now(), now(), 'completed', s.start_at, s.end_at, '[]', '{}', '', s.recorder_id, s.id, s.id
            FROM recorders_recorderschedule s""")
        for table in ("recorders_recorderschedule", "ingest_mediaasset", "recorders_recordingsession"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        # 10 windows per recorder since 47 minutes ago, 4 minutes each: all over but the last, which is still open.
        cursor.execute("""
            INSERT INTO recorders_recorderschedule (created_at, updated_at, start_at, end_at, recurrence, rrule,
                skip_dates, name, status, error_message, claimed_by, recorder_id, series_start_at, series_end_at)
            SELECT now(), now(), w.start_at, w.start_at + interval '4 minutes', 'none', '', '{}', 'Outage ' || j,
                   'pending', '', '', r.id, w.start_at, w.start_at + interval '4 minutes'
            FROM bench_recorders r CROSS JOIN generate_series(0, %s - 1) j
            CROSS JOIN LATERAL (SELECT now() - interval '47 minutes' + j * interval '5 minutes' AS start_at) w
            """, [DUE_PER_RECORDER])
        cursor.execute("VACUUM ANALYZE")  # as autovacuum leaves tables a while after a bulk load


def _seed_pass(connection) -> float:
    """The seed's tick statements, each rolled back so both methods see the same data; seconds."""
    began = time.perf_counter()
    for statement in SEED_TICK:
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(statement)
            cursor.fetchall()
            cursor.execute("ROLLBACK")
    return time.perf_counter() - began


def main() -> None:
    os.environ.update(DATABASE_URL=fresh_database_url("bench_tick"), DJANGO_SETTINGS_MODULE="station.settings",
                      LOG_LEVEL="ERROR")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count
    from django.utils import timezone

    from recorders import services
    from recorders.models import Recorder, RecorderSchedule
    from station.models import Alert, Studio

    call_command("migrate", verbosity=0)
    studio = Studio.objects.create(name="Bench", slug="bench")
    recorder_ids = [Recorder.objects.create(studio=studio, name=f"Recorder {n}", source_url="tone:1000").pk
                    for n in range(RECORDERS)]
    began = time.perf_counter()
    _load(connection, studio.pk, recorder_ids)
    load_seconds = time.perf_counter() - began
    connection.close()  # autocommit from here, as the tick's loop runs
    sampler = RssSampler()  # the tick's process and the PostgreSQL backend that serves it
    sampler.alone[os.getpid()] = "bench (the tick)"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        sampler.alone[cursor.fetchone()[0]] = "postgres backend"
    sampler.start()

    seed_due = _seed_pass(connection)
    services.housekeeping(owner="warm-up", now=timezone.now() - timedelta(days=1))  # imports, plans
    began = time.perf_counter()
    outcome = services.housekeeping(owner="bench")
    due_seconds = time.perf_counter() - began
    handled = dict(RecorderSchedule.objects.filter(name__startswith="Outage").values_list("status").annotate(
        n=Count("id")))
    alerts = Alert.objects.filter(code="recording_missed").count()

    idle = []
    for _ in range(IDLE_PASSES):
        began = time.perf_counter()
        services.housekeeping(owner="bench")
        idle.append(time.perf_counter() - began)
    seed_idle = statistics.median(_seed_pass(connection) for _ in range(IDLE_PASSES))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        database_mb = cursor.fetchone()[0] / 2**20
    sampler.running = False

    figures = {
        "finished_windows": RECORDERS * FINISHED_PER_RECORDER,
        "due_windows": RECORDERS * DUE_PER_RECORDER,
        "load_seconds": round(load_seconds, 1),
        "due_pass_seconds": round(due_seconds, 3),
        "due_pass_outcome": outcome,
        "due_windows_after": handled,
        "alerts_raised": alerts,
        "idle_pass_ms_median": round(statistics.median(idle) * 1000, 2),
        "idle_pass_ms_max": round(max(idle) * 1000, 2),
        "seed_sql_due_pass_seconds": round(seed_due, 3),
        "seed_sql_idle_pass_ms_median": round(seed_idle * 1000, 2),
        **sampler.figures(),
        "database_mb": round(database_mb),
    }
    goal = {"due_pass_seconds_max": GOAL_DUE_SECONDS, "idle_pass_ms_median_max": GOAL_IDLE_MS}
    met = due_seconds <= GOAL_DUE_SECONDS and statistics.median(idle) * 1000 <= GOAL_IDLE_MS
    print(json.dumps({"bench": "tick_scale", "figures": figures, "goal": goal, "met": met}))


if __name__ == "__main__":
    main()
