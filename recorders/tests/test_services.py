from datetime import timedelta

import pytest
from django.utils import timezone

from recorders import services
from recorders.models import RecorderSchedule
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
