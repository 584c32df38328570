from datetime import timedelta

import pytest
from django.utils import timezone

from recorders import services
from ingest.models import MediaAsset
from recorders.models import RecorderSchedule, RecordingSession
from station import events
from station.errors import TransitionNotAllowed, UserError
from station.tests.factories import ScheduleFactory

pytestmark = pytest.mark.django_db
Status = RecorderSchedule.Status


def test_cancel_happens_once_and_is_announced_after_commit(django_capture_on_commit_callbacks):
    schedule = ScheduleFactory()
    received = []
    unsubscribe = events.subscribe(received.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.schedule_cancel(schedule=schedule)
        with pytest.raises(TransitionNotAllowed):
            services.schedule_cancel(schedule=RecorderSchedule.objects.get(pk=schedule.pk))
    finally:
        unsubscribe()
    assert RecorderSchedule.objects.get(pk=schedule.pk).status == Status.CANCELLED
    assert [e["payload"]["status"] for e in received] == ["cancelled"]


def test_a_window_cancelled_before_its_first_sample_leaves_no_pending_media_behind(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    began = timezone.now() - timedelta(seconds=2)
    window = ScheduleFactory(start_at=began, end_at=began + timedelta(minutes=10))
    held = services.schedule_claim(schedule_id=window.pk, owner="host-1/11/a", node=None, now=began)
    services.schedule_cancel(schedule=RecorderSchedule.objects.get(pk=window.pk))  # the source never answered

    services.recording_finalize(schedule=held, stopped_at=timezone.now(), epoch=held.lease_epoch)

    session = RecordingSession.objects.select_related("asset").get(schedule=window)
    assert session.status == RecordingSession.Status.COMPLETED
    assert (session.asset.status, session.asset.error_message) == (
        MediaAsset.Status.ERROR, "The window was cancelled before anything was recorded.")
    assert RecorderSchedule.objects.get(pk=window.pk).status == Status.CANCELLED


def test_start_now_opens_a_pending_window():
    schedule = ScheduleFactory()
    before = timezone.now()
    services.schedule_start_now(schedule=schedule)
    schedule.refresh_from_db()
    assert before <= schedule.start_at <= timezone.now()
    assert schedule.status == Status.PENDING


def test_start_now_that_would_overlap_reports_the_clash():
    earlier = ScheduleFactory(start_at=timezone.now() + timedelta(minutes=5))
    later = ScheduleFactory(recorder=earlier.recorder, start_at=earlier.end_at)
    earlier.move_to(Status.STARTING)
    earlier.move_to(Status.RUNNING)
    RecorderSchedule.objects.filter(pk=earlier.pk).update(start_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(UserError) as raised:
        services.schedule_start_now(schedule=later)
    assert raised.value.code == "window_overlap"


def test_stop_now_on_a_window_that_is_not_recording_says_so():
    schedule = ScheduleFactory()
    with pytest.raises(UserError) as raised:
        services.schedule_stop_now(schedule=schedule)
    assert raised.value.code == "not_recording"
    assert "cancel it instead" in str(raised.value)


def test_stop_now_closes_a_running_window():
    schedule = ScheduleFactory(start_at=timezone.now() - timedelta(minutes=1), status=Status.RUNNING)
    services.schedule_stop_now(schedule=schedule)
    schedule.refresh_from_db()
    assert schedule.end_at <= timezone.now()
