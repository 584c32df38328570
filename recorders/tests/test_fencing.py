"""Once another agent took a window over, whatever the agent before it writes is refused by the database."""

import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from recorders import services
from recorders.models import RecorderSchedule, RecordingSession
from station import fencing
from station.fencing import Fenced
from station.models import Alert
from station.tests.factories import ScheduleFactory

Status = RecorderSchedule.Status


def _recording_taken_over() -> tuple[RecorderSchedule, int, RecorderSchedule]:
    """A window recorded by host-1, then taken over by host-2 after host-1's lease ran out: (window as host-1 holds
    it, host-1's epoch, window as host-2 holds it)."""
    began = timezone.now() - timedelta(seconds=30)
    window = ScheduleFactory(start_at=began, end_at=began + timedelta(minutes=10))
    first = services.schedule_claim(schedule_id=window.pk, owner="host-1/11/a", node=None, now=began)
    services.recording_started(schedule=first, epoch=first.lease_epoch, now=began, data_since=began)
    second = RecorderSchedule.objects.get(pk=window.pk)
    assert services.schedule_take_over(schedule=second, owner="host-2/22/b", node=None,
                                       now=began + timedelta(seconds=settings.AGENT_LEASE_SECONDS + 1))
    return first, first.lease_epoch, second


@pytest.mark.django_db
def test_each_write_of_an_agent_whose_window_was_taken_over_is_refused_and_changes_nothing():
    first, stale, second = _recording_taken_over()
    assert second.lease_epoch > stale
    before = RecorderSchedule.objects.get(pk=first.pk)
    now = timezone.now()

    for write in (
        lambda: services.recording_started(schedule=first, epoch=stale, now=now, data_since=now),
        lambda: services.recording_interrupted(schedule=first, epoch=stale, since=now, reason="source dropped"),
        lambda: services.recording_source_dead(schedule=first, epoch=stale, since=now),
        lambda: services.recording_source_back(schedule=first, epoch=stale),
        lambda: services.schedule_fail(schedule=first, epoch=stale, reason="ffmpeg died"),
    ):
        with pytest.raises(Fenced):
            write()
    assert not services.schedule_begin_stop(schedule=first, epoch=stale, now=now)
    assert services.leases_renew(held={first.pk: stale}, now=now + timedelta(minutes=1)) == set()

    after = RecorderSchedule.objects.get(pk=first.pk)
    assert (after.status, after.claimed_by, after.lease_expires_at, after.error_message) == (
        Status.RUNNING, "host-2/22/b", before.lease_expires_at, "")
    assert RecordingSession.objects.get(schedule=first).gaps == []
    assert not Alert.objects.exists()
    # the agent that holds the window now writes as before
    services.recording_interrupted(schedule=second, epoch=second.lease_epoch, since=now, reason="source dropped")
    assert services.leases_renew(held={second.pk: second.lease_epoch}, now=now) == {second.pk}
    assert RecordingSession.objects.get(schedule=first).gaps[0][2] == "source dropped"


@pytest.mark.django_db
def test_the_database_raises_the_epoch_whenever_the_window_changes_hands_and_never_lowers_it():
    window = ScheduleFactory()
    stale_copy = RecorderSchedule.objects.get(pk=window.pk)
    RecorderSchedule.objects.filter(pk=window.pk).update(claimed_by="host-1/1/a")  # any update, not only our services
    RecorderSchedule.objects.filter(pk=window.pk).update(claimed_by="host-1/1/a", name="renamed")  # same owner
    assert RecorderSchedule.objects.get(pk=window.pk).lease_epoch == 1

    stale_copy.save()  # a whole-row save of a copy read before: it writes epoch 0 and the old owner back
    assert RecorderSchedule.objects.get(pk=window.pk).lease_epoch == 2  # raised again, not lowered to 0


@pytest.mark.django_db(transaction=True)
def test_a_takeover_waits_for_a_write_in_flight_and_every_write_after_it_is_refused():
    began = timezone.now() - timedelta(seconds=30)
    window = ScheduleFactory(start_at=began, end_at=began + timedelta(minutes=10))
    first = services.schedule_claim(schedule_id=window.pk, owner="host-1/11/a", node=None, now=began)
    writing, taken_at = threading.Event(), []

    def slow_write():
        try:
            with transaction.atomic():
                fencing.hold(RecorderSchedule, pk=first.pk, epoch=first.lease_epoch)
                writing.set()
                time.sleep(0.5)  # the write is in flight while the other agent tries to take the window
                RecorderSchedule.objects.filter(pk=first.pk).update(error_message="written by host-1")
            return time.monotonic()
        finally:
            connection.close()

    def take_over():
        writing.wait(timeout=10)
        try:
            assert services.schedule_take_over(
                schedule=RecorderSchedule.objects.get(pk=first.pk), owner="host-2/22/b", node=None,
                now=began + timedelta(seconds=settings.AGENT_LEASE_SECONDS + 1))
            taken_at.append(time.monotonic())
        finally:
            connection.close()

    taker = threading.Thread(target=take_over)
    taker.start()
    committed_at = slow_write()
    taker.join(timeout=10)

    assert taken_at and taken_at[0] >= committed_at  # the takeover waited for the write in flight
    with pytest.raises(Fenced), transaction.atomic():
        fencing.hold(RecorderSchedule, pk=first.pk, epoch=first.lease_epoch)
    assert RecorderSchedule.objects.get(pk=first.pk).claimed_by == "host-2/22/b"


@pytest.mark.django_db
def test_a_cancelled_window_stays_its_agents_while_it_finishes_and_the_tick_leaves_it_alone(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    began = timezone.now() - timedelta(seconds=30)
    window = ScheduleFactory(start_at=began, end_at=began + timedelta(minutes=10))
    held = services.schedule_claim(schedule_id=window.pk, owner="host-1/11/a", node=None, now=began)
    services.recording_started(schedule=held, epoch=held.lease_epoch, now=began, data_since=began)
    services.schedule_cancel(schedule=RecorderSchedule.objects.get(pk=window.pk))
    now = timezone.now()

    # its agent joins and hashes what was recorded up to the cancel for longer than a lease: it renews meanwhile
    for seconds in range(0, 60, int(settings.AGENT_LEASE_SECONDS // 2)):
        assert services.leases_renew(held={window.pk: held.lease_epoch}, now=now + timedelta(seconds=seconds)) == {
            window.pk}
        services.housekeeping(owner="tick", now=now + timedelta(seconds=seconds + 1))

    after = RecorderSchedule.objects.get(pk=window.pk)
    assert (after.status, after.claimed_by, after.lease_epoch) == (Status.CANCELLED, "host-1/11/a", held.lease_epoch)
    assert RecordingSession.objects.get(schedule=window).gaps == []
    # once its agent is gone for good, the tick still finishes it
    services.housekeeping(owner="tick", now=now + timedelta(seconds=60 + settings.AGENT_LEASE_SECONDS + 1))
    assert RecorderSchedule.objects.get(pk=window.pk).claimed_by == "tick"
