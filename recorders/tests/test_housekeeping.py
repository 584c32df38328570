"""The tick's safety net and series continuation, on the real database."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from ingest.models import MediaAsset
from recorders import services
from recorders.models import RecorderSchedule, RecordingSession
from station.models import Alert
from station.periodic import run_exclusively
from station.schedules import PERIODIC_JOBS
from station.services import record_edit_save
from station.recurrence import to_utc
from station.tests.factories import MediaAssetFactory, NodeFactory, RecorderFactory, ScheduleFactory, StudioFactory

pytestmark = pytest.mark.django_db
Status = RecorderSchedule.Status


def test_a_start_no_agent_took_fails_with_the_reason_and_alerts():
    node = NodeFactory(name="studio-host", last_heartbeat_at=timezone.now() - timedelta(minutes=5))
    schedule = ScheduleFactory(recorder__node=node, start_at=timezone.now() - timedelta(seconds=30))

    services.housekeeping(owner="tick")

    schedule.refresh_from_db()
    assert schedule.status == Status.FAILED
    assert "node studio-host is offline" in schedule.error_message
    assert Alert.objects.get(code="recording_missed").severity == Alert.Severity.CRITICAL


def test_a_window_that_passed_unclaimed_is_missed_never_silently_skipped():
    start = timezone.now() - timedelta(minutes=10)
    schedule = ScheduleFactory(start_at=start, end_at=start + timedelta(minutes=5))

    services.housekeeping(owner="tick")

    schedule.refresh_from_db()
    assert schedule.status == Status.MISSED
    assert "no node that can record was online" in schedule.error_message


def test_a_recording_whose_agent_vanished_after_its_window_is_closed_out(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    start = timezone.now() - timedelta(minutes=3)
    schedule = ScheduleFactory(start_at=start, end_at=start + timedelta(minutes=1), status=Status.RUNNING,
                               claimed_by="dead-agent", lease_expires_at=timezone.now() - timedelta(minutes=1))
    RecordingSession.objects.create(schedule=schedule, recorder=schedule.recorder, started_at=start)

    services.housekeeping(owner="tick")

    schedule.refresh_from_db()
    assert schedule.status == Status.FAILED
    assert "Nothing was recorded" in schedule.error_message


def test_a_recurring_window_queues_its_next_window_exactly_once():
    schedule = ScheduleFactory(recurrence="daily", status=Status.COMPLETED)
    first = services.schedule_queue_next(schedule=schedule)
    again = services.schedule_queue_next(schedule=schedule)
    services.housekeeping(owner="tick")
    assert first == again
    assert RecorderSchedule.objects.filter(previous=schedule).count() == 1
    assert first.start_at == schedule.start_at + timedelta(days=1)
    assert first.status == Status.PENDING


def test_start_now_does_not_move_the_rest_of_the_series():
    schedule = ScheduleFactory(recurrence="daily")
    planned_next = schedule.following_window()
    services.schedule_start_now(schedule=schedule)
    schedule.refresh_from_db()
    assert schedule.following_window() == planned_next


def test_a_series_edited_by_a_person_moves_from_then_on():
    schedule = ScheduleFactory(recurrence="daily")
    schedule.start_at += timedelta(hours=1)
    schedule.end_at += timedelta(hours=1)
    record_edit_save(record=schedule, fields=["start_at", "end_at"])
    schedule.refresh_from_db()
    assert schedule.following_window()[0] == schedule.start_at + timedelta(days=1)


def _series(zone_name: str, local_start: datetime, minutes: int, recurrence: str, count: int, **extra):
    zone = ZoneInfo(zone_name)
    studio = StudioFactory(time_zone=zone_name)
    start = to_utc(local_start, zone)
    schedule = ScheduleFactory(recorder=RecorderFactory(studio=studio), recurrence=recurrence,
                               start_at=start, end_at=start + timedelta(minutes=minutes), **extra)
    RecorderSchedule.objects.filter(pk=schedule.pk).update(status=Status.COMPLETED)
    windows = [schedule]
    for _ in range(count - 1):
        windows[-1].refresh_from_db()
        windows.append(services.schedule_queue_next(schedule=windows[-1]))
        RecorderSchedule.objects.filter(pk=windows[-1].pk).update(status=Status.COMPLETED)
    return [(w.start_at.astimezone(zone).strftime("%m-%d %H:%M %Z"), w.end_at.astimezone(zone).strftime("%H:%M")) for w in windows]


def test_weekly_0130_london_series_keeps_its_local_time_across_both_clock_changes(db):
    spring = _series("Europe/London", datetime(2026, 3, 22, 1, 30), 60, "weekly", 3)
    assert spring == [("03-22 01:30 GMT", "02:30"), ("03-29 02:30 BST", "03:30"), ("04-05 01:30 BST", "02:30")]
    autumn = _series("Europe/London", datetime(2026, 10, 18, 1, 30), 60, "weekly", 3)
    assert autumn == [("10-18 01:30 BST", "02:30"), ("10-25 01:30 BST", "02:30"), ("11-01 01:30 GMT", "02:30")]


def test_daily_new_york_series_across_both_clock_changes(db):
    spring = _series("America/New_York", datetime(2026, 3, 7, 2, 30), 30, "daily", 3)
    assert spring == [("03-07 02:30 EST", "03:00"), ("03-08 03:30 EDT", "04:00"), ("03-09 02:30 EDT", "03:00")]
    autumn = _series("America/New_York", datetime(2026, 10, 31, 7, 0), 60, "daily", 3)
    assert autumn == [("10-31 07:00 EDT", "08:00"), ("11-01 07:00 EST", "08:00"), ("11-02 07:00 EST", "08:00")]


def test_an_rrule_series_with_a_skipped_date(db):
    windows = _series("Europe/London", datetime(2026, 6, 1, 9, 0), 30, "rrule", 3,
                      rrule="FREQ=WEEKLY;BYDAY=MO,WE,FR", skip_dates=[datetime(2026, 6, 3).date()])
    assert [w[0] for w in windows] == ["06-01 09:00 BST", "06-05 09:00 BST", "06-08 09:00 BST"]


def test_a_live_asset_nobody_records_any_more_becomes_an_error(settings):
    settings.LIVE_ASSET_TIMEOUT_MINUTES = 1
    asset = MediaAssetFactory(status=MediaAsset.Status.LIVE, duration_seconds=None)
    MediaAsset.objects.filter(pk=asset.pk).update(updated_at=timezone.now() - timedelta(minutes=2))
    fresh = MediaAssetFactory(status=MediaAsset.Status.LIVE, duration_seconds=None)

    services.housekeeping(owner="tick")

    asset.refresh_from_db()
    fresh.refresh_from_db()
    assert asset.status == MediaAsset.Status.ERROR and "incomplete" in asset.error_message
    assert fresh.status == MediaAsset.Status.LIVE


TICK_LOCK_KEY = PERIODIC_JOBS["recorders.tick"].lock_key


def test_only_one_tick_runs_at_a_time():
    params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [TICK_LOCK_KEY])
        ran = []
        assert run_exclusively(name="t", lock_key=TICK_LOCK_KEY, interval=0.1, run_for=0.2,
                               step=lambda: ran.append(1), wait=0.3) is False
        assert ran == []
        other.execute("SELECT pg_advisory_unlock(%s)", [TICK_LOCK_KEY])
    assert run_exclusively(name="t", lock_key=TICK_LOCK_KEY, interval=0.1, run_for=0.25, step=lambda: ran.append(1))
    assert len(ran) >= 2


def test_an_outage_raises_one_alert_per_recorder_and_tells_the_desk_of_every_window():
    from station.models import StudioEvent

    recorder = RecorderFactory(name="Studio mic")
    first = timezone.now() - timedelta(minutes=30)
    windows = [ScheduleFactory(recorder=recorder, start_at=first + timedelta(minutes=5 * n),
                               end_at=first + timedelta(minutes=5 * n + 4)) for n in range(5)]

    services.housekeeping(owner="tick")
    later = ScheduleFactory(recorder=recorder, start_at=timezone.now() - timedelta(seconds=30),
                            end_at=timezone.now() + timedelta(minutes=5))
    services.housekeeping(owner="tick")  # the same outage, a pass later

    statuses = [RecorderSchedule.objects.get(pk=schedule.pk).status for schedule in [*windows, later]]
    assert statuses == [Status.MISSED] * 5 + [Status.FAILED]
    assert Alert.objects.filter(subject="Studio mic").count() == 1
    assert StudioEvent.objects.filter(type="recorders.schedule").count() == 6
