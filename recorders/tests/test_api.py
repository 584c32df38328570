"""Recorders and schedules over REST: permissions, validation, conflicts, actions, DST occurrences."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from recorders.models import RecorderSchedule, RecordingSession
from station.tests import factories
from station.tests.api_support import READ_ONLY, Resource, assert_list_queries_flat, assert_permission_matrix

Status = RecorderSchedule.Status


@pytest.fixture
def recorder(studio_a):
    return factories.RecorderFactory(studio=studio_a, name="Studio mic")


def window(hours_from_now: float, minutes: int = 30) -> dict:
    start = timezone.now() + timedelta(hours=hours_from_now)
    return {"start_at": start.isoformat(), "end_at": (start + timedelta(minutes=minutes)).isoformat()}


def test_recorders_permission_matrix(api, role_users, studio_a, studio_b):
    recorders = Resource("recorders", make=lambda studio: factories.RecorderFactory(studio=studio),
                         write=("patch", "", {"enabled": False}))
    assert_permission_matrix(recorders, role_users, studio_a)


def test_schedules_permission_matrix(api, role_users, studio_a, studio_b):
    schedules = Resource("schedules", make=lambda studio: factories.ScheduleFactory(recorder__studio=studio),
                         write=("patch", "", {"name": "Renamed"}))
    assert_permission_matrix(schedules, role_users, studio_a)


@pytest.mark.parametrize("action", ["cancel", "start-now"])
def test_schedule_actions_permission_matrix(api, role_users, studio_a, studio_b, action):
    schedules = Resource("schedules", make=lambda studio: factories.ScheduleFactory(recorder__studio=studio),
                         write=("post", f"{action}/", {}))
    assert_permission_matrix(schedules, role_users, studio_a)


def test_create_a_schedule_answers_in_utc(api, operator_a, recorder):
    body = {"recorder": recorder.pk, "name": "Morning", "start_at": "2027-01-04T07:00:00+01:00",
            "end_at": "2027-01-04T09:00:00+01:00", "recurrence": "weekly"}
    response = api(operator_a).post("/api/v1/schedules/", body, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["start_at"], created["end_at"]) == ("2027-01-04T06:00:00Z", "2027-01-04T08:00:00Z")
    assert (created["status"], created["error_message"], created["rrule"]) == ("pending", "", "")
    assert RecorderSchedule.objects.get(pk=created["id"]).start_at == datetime(2027, 1, 4, 6, tzinfo=UTC)


def test_a_new_window_is_validated_and_written_without_extra_queries(api, operator_a, recorder,
                                                                     django_assert_num_queries):
    client = api(operator_a)
    body = {"recorder": recorder.pk, "name": "Morning", "start_at": "2027-01-04T07:00:00Z", "end_at": "2027-01-04T09:00:00Z"}
    # the token, the operator role, the recorder among those the user may change, the insert: the
    # window's own checks (times in order, overlaps) are the database's on that insert
    with django_assert_num_queries(4):
        assert client.post("/api/v1/schedules/", body, format="json").status_code == 201


def test_viewer_cannot_create_and_another_studio_cannot_target_our_recorder(api, viewer_a, operator_b, recorder):
    body = {"recorder": recorder.pk, "name": "Sneaky", **window(2)}
    assert api(viewer_a).post("/api/v1/schedules/", body, format="json").status_code == 403
    response = api(operator_b).post("/api/v1/schedules/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "does_not_exist"
    assert not RecorderSchedule.objects.exists()


@pytest.mark.parametrize(("change", "code", "field"), [
    ({"end_at": "2027-01-04T06:00:00Z"}, "end_before_start", "non_field_errors"),
    ({"start_at": "2020-01-01T07:00:00Z", "end_at": "2020-01-01T08:00:00Z"}, "window_in_past", "end_at"),
    ({"recurrence": "rrule", "rrule": "FREQ=SOMETIMES"}, "rrule_invalid", "rrule"),
    ({"rrule": "FREQ=DAILY"}, "rrule_unused", "rrule"),
    ({"start_at": "tomorrow"}, "invalid", "start_at"),
    ({"recurrence": "hourly"}, "invalid_choice", "recurrence"),
])
def test_bad_schedules_are_400_with_the_models_own_code(api, operator_a, recorder, change, code, field):
    body = {"recorder": recorder.pk, "name": "Bad", "start_at": "2027-01-04T07:00:00Z", "end_at": "2027-01-04T08:00:00Z",
            **change}
    response = api(operator_a).post("/api/v1/schedules/", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], list(error["fields"])) == (code, [field])
    assert not RecorderSchedule.objects.exists()


def test_overlapping_window_is_a_409_conflict(api, operator_a, recorder):
    factories.ScheduleFactory(recorder=recorder, start_at=datetime(2027, 1, 4, 7, tzinfo=UTC),
                              end_at=datetime(2027, 1, 4, 8, tzinfo=UTC))
    body = {"recorder": recorder.pk, "name": "Clash", "start_at": "2027-01-04T07:30:00Z", "end_at": "2027-01-04T08:30:00Z"}
    response = api(operator_a).post("/api/v1/schedules/", body, format="json")
    assert response.status_code == 409
    assert response.json() == {"error": {
        "code": "window_overlap", "message": "This window overlaps another active window on the same recorder.",
        "params": {}, "fields": {}}}


def test_cancel_then_cancel_again_is_a_conflict(api, operator_a, recorder):
    schedule = factories.ScheduleFactory(recorder=recorder, name="News")
    cancelled = api(operator_a).post(f"/api/v1/schedules/{schedule.pk}/cancel/")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    again = api(operator_a).post(f"/api/v1/schedules/{schedule.pk}/cancel/", HTTP_ACCEPT_LANGUAGE="en")
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "transition_not_allowed"
    assert error["params"] == {"object": str(schedule), "status": "Cancelled", "target": "Cancelled"}


def test_start_now_and_stop_now(api, operator_a, recorder):
    schedule = factories.ScheduleFactory(recorder=recorder, name="News")
    started = api(operator_a).post(f"/api/v1/schedules/{schedule.pk}/start-now/").json()
    assert datetime.fromisoformat(started["start_at"]) <= timezone.now()
    not_recording = api(operator_a).post(f"/api/v1/schedules/{schedule.pk}/stop-now/")
    assert (not_recording.status_code, not_recording.json()["error"]["code"]) == (409, "not_recording")
    RecorderSchedule.objects.filter(pk=schedule.pk).update(status=Status.RUNNING)
    stopped = api(operator_a).post(f"/api/v1/schedules/{schedule.pk}/stop-now/")
    assert stopped.status_code == 200
    assert datetime.fromisoformat(stopped.json()["end_at"]) <= timezone.now()


def test_a_claimed_windows_times_are_read_only(api, operator_a, recorder):
    schedule = factories.ScheduleFactory(recorder=recorder)
    RecorderSchedule.objects.filter(pk=schedule.pk).update(status=Status.RUNNING)
    moved = api(operator_a).patch(f"/api/v1/schedules/{schedule.pk}/", window(5), format="json")
    assert (moved.status_code, moved.json()["error"]["code"]) == (409, "window_claimed")
    renamed = api(operator_a).patch(f"/api/v1/schedules/{schedule.pk}/", {"name": "Renamed"}, format="json")
    assert renamed.status_code == 200


def test_an_update_writes_only_its_fields(api, operator_a, recorder):
    """An agent's status change between the client's read and its write survives."""
    schedule = factories.ScheduleFactory(recorder=recorder)
    client = api(operator_a)
    client.get(f"/api/v1/schedules/{schedule.pk}/")
    RecorderSchedule.objects.filter(pk=schedule.pk).update(status=Status.STARTING, claimed_by="agent")
    client.patch(f"/api/v1/schedules/{schedule.pk}/", {"name": "Renamed"}, format="json")
    schedule.refresh_from_db()
    assert (schedule.name, schedule.status, schedule.claimed_by) == ("Renamed", Status.STARTING, "agent")


def test_filters_and_ordering(api, operator_a, recorder):
    early = factories.ScheduleFactory(recorder=recorder, **_at(2027, 1, 4))
    late = factories.ScheduleFactory(recorder=recorder, **_at(2027, 1, 6))
    RecorderSchedule.objects.filter(pk=late.pk).update(status=Status.CANCELLED)
    client = api(operator_a)
    ids = lambda query: [row["id"] for row in client.get(f"/api/v1/schedules/?{query}").json()["results"]]  # noqa: E731
    assert ids("ordering=-start_at") == [late.pk, early.pk]
    assert ids("status=pending") == [early.pk]
    assert ids("starts_after=2027-01-05T00:00:00Z") == [late.pk]
    assert ids(f"recorder={recorder.pk}&ordering=start_at") == [early.pk, late.pk]
    bad = client.get("/api/v1/schedules/?starts_after=someday")
    assert (bad.status_code, list(bad.json()["error"]["fields"])) == (400, ["starts_after"])


def _at(year, month, day, hour=7):
    start = datetime(year, month, day, hour, tzinfo=UTC)
    return {"start_at": start, "end_at": start + timedelta(hours=1)}


@pytest.mark.parametrize(("zone", "first_day", "change_day"), [
    ("Europe/London", datetime(2027, 3, 26), datetime(2027, 3, 28)),
    ("America/New_York", datetime(2027, 3, 12), datetime(2027, 3, 14)),
])
def test_daily_occurrences_stay_at_seven_local_across_the_spring_change(api, operator_a, studio_a, zone, first_day,
                                                                         change_day):
    from zoneinfo import ZoneInfo

    studio_a.time_zone = zone
    studio_a.save()
    local = ZoneInfo(zone)
    start = first_day.replace(hour=7, tzinfo=local)
    schedule = factories.ScheduleFactory(recorder__studio=studio_a, start_at=start, end_at=start + timedelta(hours=2),
                                         recurrence="daily")
    response = api(operator_a).get(f"/api/v1/schedules/{schedule.pk}/occurrences/",
                                   {"until": (first_day + timedelta(days=4)).replace(tzinfo=UTC).isoformat()})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["time_zone"] == zone
    assert [o["local_start"][11:19] for o in body["occurrences"]] == ["07:00:00"] * 4
    assert [o["local_end"][11:19] for o in body["occurrences"]] == ["09:00:00"] * 4
    by_day = {datetime.fromisoformat(o["local_start"]).date(): o for o in body["occurrences"]}
    before, after = by_day[(change_day - timedelta(days=1)).date()], by_day[change_day.date()]
    utc_hour = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00")).hour  # noqa: E731
    assert utc_hour(after["start_at"]) == utc_hour(before["start_at"]) - 1  # an hour earlier in UTC after the change
    assert before["local_start"][19:] != after["local_start"][19:]  # the offset changed with it
    assert all(o["start_at"].endswith("Z") for o in body["occurrences"])


def test_occurrences_of_a_one_off_and_a_bounded_series(api, operator_a, recorder):
    one_off = factories.ScheduleFactory(recorder=recorder, **_at(2027, 1, 4))
    response = api(operator_a).get(f"/api/v1/schedules/{one_off.pk}/occurrences/", {"until": "2030-01-01T00:00:00Z"})
    assert [o["start_at"] for o in response.json()["occurrences"]] == ["2027-01-04T07:00:00Z"]
    weekly = factories.ScheduleFactory(recorder=recorder, recurrence="weekly", **_at(2027, 1, 5))
    response = api(operator_a).get(f"/api/v1/schedules/{weekly.pk}/occurrences/", {"until": "2030-01-01T00:00:00Z", "limit": 3})
    assert len(response.json()["occurrences"]) == 3


@pytest.mark.parametrize("query", [{}, {"until": "soon"}, {"until": "2030-01-01T00:00:00Z", "limit": 0}])
def test_occurrences_need_a_valid_until(api, operator_a, recorder, query):
    schedule = factories.ScheduleFactory(recorder=recorder)
    response = api(operator_a).get(f"/api/v1/schedules/{schedule.pk}/occurrences/", query)
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) <= {"until", "limit"}


def test_occurrences_of_another_studio_are_404(api, operator_b, recorder):
    schedule = factories.ScheduleFactory(recorder=recorder)
    assert api(operator_b).get(f"/api/v1/schedules/{schedule.pk}/occurrences/", {"until": "x"}).status_code == 404


def test_schedule_list_queries_do_not_grow_with_rows(api, operator_a, recorder):
    made = []

    def make(count):
        for _ in range(count):
            made.append(factories.ScheduleFactory(recorder=recorder, **_at(2027, 1, 1, 0) | {
                "start_at": datetime(2027, 1, 1, tzinfo=UTC) + timedelta(hours=len(made)),
                "end_at": datetime(2027, 1, 1, tzinfo=UTC) + timedelta(hours=len(made), minutes=30)}))

    assert_list_queries_flat(api(operator_a), "/api/v1/schedules/", make)


def test_recorder_list_queries_do_not_grow_with_rows(api, operator_a, studio_a):
    assert_list_queries_flat(api(operator_a), "/api/v1/recorders/",
                             lambda count: factories.RecorderFactory.create_batch(count, studio=studio_a))


def test_a_window_a_person_moves_anchors_its_series_and_start_now_does_not(api, operator_a, recorder):
    first = timezone.now().replace(microsecond=0) + timedelta(days=1)
    moved = factories.ScheduleFactory(recorder=recorder, start_at=first, end_at=first + timedelta(hours=1),
                                      recurrence="daily")
    started = factories.ScheduleFactory(recorder=factories.RecorderFactory(studio=recorder.studio),
                                        start_at=first, end_at=first + timedelta(hours=1), recurrence="daily")
    client = api(operator_a)

    later = first + timedelta(minutes=30)
    client.patch(f"/api/v1/schedules/{moved.pk}/", {"start_at": later.isoformat(),
                                                   "end_at": (later + timedelta(hours=1)).isoformat()}, format="json")
    client.post(f"/api/v1/schedules/{started.pk}/start-now/")

    moved.refresh_from_db()
    started.refresh_from_db()
    assert moved.following_window()[0] == later + timedelta(days=1)  # the series follows the moved window
    assert started.following_window()[0] == first + timedelta(days=1)  # opened early once; the series keeps its time


def _recorded(recorder, hours_ago: float, **fields):
    """A window that recorded, with its session and asset, as an agent leaves them."""
    start = timezone.now() - timedelta(hours=hours_ago)
    schedule = factories.ScheduleFactory(recorder=recorder, start_at=start, end_at=start + timedelta(minutes=30))
    RecorderSchedule.objects.filter(pk=schedule.pk).update(status=Status.COMPLETED)
    asset = factories.MediaAssetFactory(studio=recorder.studio, origin="recording")
    session = RecordingSession.objects.create(schedule=schedule, recorder=recorder, started_at=start,
                                              ended_at=start + timedelta(minutes=30), asset=asset, **fields)
    return schedule, session, asset



def test_recordings_permission_matrix(api, role_users, studio_a, studio_b):
    recordings = Resource("recordings", make=lambda studio: _recorded(factories.RecorderFactory(studio=studio), 2)[1],
                          write=("delete", "", {}), write_status=READ_ONLY)
    assert_permission_matrix(recordings, role_users, studio_a)


def test_a_client_finds_what_a_window_recorded_from_the_window_and_from_the_recorder(api, viewer_a, recorder):
    schedule, session, asset = _recorded(recorder, 3, gaps=[["2027-01-01T00:00:05+00:00", "2027-01-01T00:00:07+00:00"]])
    other_schedule, other_session, other_asset = _recorded(factories.RecorderFactory(studio=recorder.studio), 1)
    pending = factories.ScheduleFactory(recorder=recorder)
    client = api(viewer_a)

    window = client.get(f"/api/v1/schedules/{schedule.pk}/").json()
    listed = {row["id"]: row["recording"] for row in client.get("/api/v1/schedules/").json()["results"]}
    recording = client.get(f"/api/v1/recordings/{window['recording']}/").json()

    assert window["recording"] == session.pk and listed[pending.pk] is None and listed[other_schedule.pk] == other_session.pk
    assert (recording["schedule"], recording["asset"], recording["status"]) == (schedule.pk, asset.pk, "recording")
    assert recording["gaps"] == [["2027-01-01T00:00:05+00:00", "2027-01-01T00:00:07+00:00"]]
    by_recorder = client.get("/api/v1/media/", {"recorder": recorder.pk}).json()["results"]
    by_schedule = client.get("/api/v1/media/", {"schedule": other_schedule.pk}).json()["results"]
    assert [row["id"] for row in by_recorder] == [asset.pk] and [row["id"] for row in by_schedule] == [other_asset.pk]


def test_recordings_filter_by_recorder_schedule_status_and_time(api, viewer_a, recorder):
    old_schedule, old, _ = _recorded(recorder, 5)
    _, recent, _ = _recorded(recorder, 1)
    RecordingSession.objects.filter(pk=recent.pk).update(status=RecordingSession.Status.COMPLETED)
    _, elsewhere, _ = _recorded(factories.RecorderFactory(studio=recorder.studio), 2)
    client = api(viewer_a)

    def ids(**query):
        return [row["id"] for row in client.get("/api/v1/recordings/", query).json()["results"]]

    assert ids() == [recent.pk, elsewhere.pk, old.pk]  # newest first
    assert ids(recorder=recorder.pk) == [recent.pk, old.pk]
    assert ids(schedule=old_schedule.pk) == [old.pk]
    assert ids(status="completed") == [recent.pk]
    assert ids(started_after=(timezone.now() - timedelta(hours=3)).isoformat()) == [recent.pk, elsewhere.pk]
    assert ids(started_before=(timezone.now() - timedelta(hours=3)).isoformat()) == [old.pk]


def test_recording_list_queries_do_not_grow_with_rows(api, operator_a, recorder):
    made = []

    def make(count):
        for _ in range(count):
            made.append(_recorded(recorder, 10 + len(made)))

    assert_list_queries_flat(api(operator_a), "/api/v1/recordings/", make)
