from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from recorders.models import RecorderSchedule
from station.tests.factories import RecorderFactory, ScheduleFactory

pytestmark = pytest.mark.django_db


def test_database_rejects_overlapping_windows_on_one_recorder():
    first = ScheduleFactory()
    with pytest.raises(IntegrityError, match="recorder_schedule_no_overlap"), transaction.atomic():
        RecorderSchedule.objects.create(
            recorder=first.recorder,
            name="Clash",
            start_at=first.start_at + timedelta(minutes=10),
            end_at=first.end_at + timedelta(minutes=10),
        )


def test_database_rejects_end_before_start():
    recorder = RecorderFactory()
    start = ScheduleFactory.build().start_at
    with pytest.raises(IntegrityError, match="recorder_schedule_end_after_start"), transaction.atomic():
        RecorderSchedule.objects.create(recorder=recorder, name="Backwards", start_at=start, end_at=start - timedelta(minutes=1))


def test_back_to_back_windows_and_other_recorders_do_not_clash():
    first = ScheduleFactory()
    ScheduleFactory(recorder=first.recorder, start_at=first.end_at, end_at=first.end_at + timedelta(minutes=5))
    ScheduleFactory(start_at=first.start_at, end_at=first.end_at)  # same time, another recorder
    assert RecorderSchedule.objects.count() == 3


def test_a_cancelled_window_frees_its_time():
    first = ScheduleFactory(status=RecorderSchedule.Status.CANCELLED)
    ScheduleFactory(recorder=first.recorder, start_at=first.start_at, end_at=first.end_at)
    assert RecorderSchedule.objects.filter(recorder=first.recorder).count() == 2
