from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from recorders.models import RecorderSchedule
from station.tests.factories import RecorderFactory, ScheduleFactory

pytestmark = pytest.mark.django_db
ADD_URL = reverse("admin:recorders_recorderschedule_add")


def _form(recorder, start, end, **extra):
    local = timezone.get_current_timezone()
    return {
        "recorder": recorder.pk,
        "name": "Evening news",
        "start_at_0": start.astimezone(local).strftime("%Y-%m-%d"),
        "start_at_1": start.astimezone(local).strftime("%H:%M:%S"),
        "end_at_0": end.astimezone(local).strftime("%Y-%m-%d"),
        "end_at_1": end.astimezone(local).strftime("%H:%M:%S"),
        "recurrence": "none",
        "rrule": "",
        "skip_dates": "",
        **extra,
    }


def test_admin_shows_a_clear_error_for_an_overlapping_window(client, superuser):
    existing = ScheduleFactory()
    client.force_login(superuser)
    response = client.post(
        ADD_URL, _form(existing.recorder, existing.start_at + timedelta(minutes=5), existing.end_at + timedelta(minutes=5))
    )
    assert response.status_code == 200
    assert "This window overlaps another active window on the same recorder." in response.content.decode()
    assert RecorderSchedule.objects.count() == 1


def test_admin_shows_a_clear_error_for_end_before_start(client, superuser):
    recorder = RecorderFactory()
    start = timezone.now() + timedelta(hours=2)
    client.force_login(superuser)
    response = client.post(ADD_URL, _form(recorder, start, start - timedelta(minutes=30)))
    assert response.status_code == 200
    assert "The window must end after it starts." in response.content.decode()
    assert not RecorderSchedule.objects.exists()


def test_admin_shows_a_clear_error_for_an_invalid_rrule(client, superuser):
    recorder = RecorderFactory()
    start = timezone.now() + timedelta(hours=2)
    client.force_login(superuser)
    response = client.post(
        ADD_URL, _form(recorder, start, start + timedelta(minutes=30), recurrence="rrule", rrule="FREQ=SOMETIMES")
    )
    assert response.status_code == 200
    assert "The RRULE FREQ=SOMETIMES is not valid" in response.content.decode()
    assert not RecorderSchedule.objects.exists()


def test_admin_saves_a_valid_window(client, superuser):
    recorder = RecorderFactory()
    start = timezone.now().replace(microsecond=0) + timedelta(hours=2)
    client.force_login(superuser)
    response = client.post(ADD_URL, _form(recorder, start, start + timedelta(minutes=30)))
    assert response.status_code == 302
    assert RecorderSchedule.objects.get().start_at == start


def test_stop_now_action_on_a_pending_window_shows_the_reason_not_a_500(client, superuser):
    schedule = ScheduleFactory()
    client.force_login(superuser)
    response = client.post(
        reverse("admin:recorders_recorderschedule_changelist"),
        {"action": "stop_now", "_selected_action": [schedule.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "is Pending, not recording; cancel it instead." in response.content.decode()


def test_cancel_action_cancels(client, superuser):
    schedule = ScheduleFactory()
    client.force_login(superuser)
    client.post(reverse("admin:recorders_recorderschedule_changelist"), {"action": "cancel", "_selected_action": [schedule.pk]})
    schedule.refresh_from_db()
    assert schedule.status == RecorderSchedule.Status.CANCELLED


def test_admin_refuses_a_window_in_the_past(client, superuser):
    recorder = RecorderFactory()
    start = timezone.now() - timedelta(hours=2)
    client.force_login(superuser)
    response = client.post(ADD_URL, _form(recorder, start, start + timedelta(minutes=30)))
    assert response.status_code == 200
    assert "This window is already over" in response.content.decode()
    assert not RecorderSchedule.objects.exists()


def test_admin_refuses_an_unknown_source_scheme(client, superuser, studio_a):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:recorders_recorder_add"),
        {"studio": studio_a.pk, "name": "Bad", "source_url": "gopher://old.example/feed", "output_format": "mp3",
         "segment_seconds": 600, "pre_roll_seconds": 0, "post_roll_seconds": 0,
         "schedules-TOTAL_FORMS": 0, "schedules-INITIAL_FORMS": 0},
    )
    assert response.status_code == 200
    assert "gopher://old.example/feed can&#x27;t be recorded: use one of" in response.content.decode()


def test_saving_an_unchanged_window_writes_nothing_so_an_agents_claim_survives(client, superuser):
    start = timezone.now().replace(microsecond=0) + timedelta(hours=2)
    schedule = ScheduleFactory(start_at=start, end_at=start + timedelta(minutes=30), name="Evening news")
    client.force_login(superuser)
    change_url = reverse("admin:recorders_recorderschedule_change", args=[schedule.pk])
    client.get(change_url)  # the form as the operator saw it
    RecorderSchedule.objects.filter(pk=schedule.pk).update(claimed_by="agent")  # meanwhile

    response = client.post(change_url, _form(schedule.recorder, start, start + timedelta(minutes=30)))

    assert response.status_code == 302
    assert RecorderSchedule.objects.get(pk=schedule.pk).claimed_by == "agent"
