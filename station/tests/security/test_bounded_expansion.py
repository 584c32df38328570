"""Recurrence and dates without bounds (issue 14): refused on save, and cheap even where a raw write holds them.

A rule that never matches made every look at its series walk to the year 9999 (seconds each, in the
node agent's timeline refresh, the queueing of next windows, the occurrences action and the admin's
next-window column); a window ending on 9999-12-31 crashed the agent adding its post-roll.
"""

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib import admin
from django.db import IntegrityError, transaction
from django.urls import reverse

from playout.models import Show, ShowInstance
from playout.timeline import timeline_refresh
from recorders import selectors, services
from recorders.models import MAX_ROLL_SECONDS, Recorder, RecorderSchedule
from station.recurrence import RULE_HORIZON_YEARS
from station.tests import factories

pytestmark = pytest.mark.django_db

# The walk to 9999 took 3.5 s and more; a bounded one takes milliseconds. Generous for a loaded machine.
QUICK = 0.5
START = datetime(2027, 1, 4, 7, tzinfo=UTC)
END = START + timedelta(hours=1)

NEVER_MATCHING = {
    "30 February": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
    "30 February, hourly": "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30;BYHOUR=7",
    "31 April": "FREQ=MONTHLY;BYMONTH=4;BYMONTHDAY=31",
    "a sixth Monday": "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6",
    "BYSETPOS beyond a day's one window": "FREQ=DAILY;BYSETPOS=2",
    "UNTIL before the first window": "FREQ=DAILY;UNTIL=20200101T000000Z",
    "COUNT=0": "FREQ=WEEKLY;COUNT=0",
}
# Shapes whose walk to 9999 is slowest, for the rows that hold them anyway.
WRITTEN_RAW = {name: NEVER_MATCHING[name]
               for name in ("30 February", "30 February, hourly", "BYSETPOS beyond a day's one window")}
# (start, end, the field refused): the window that took a channel off air, and its mirror image.
ABSURD_WINDOWS = {"ending 9999-12-31": ("2027-01-04T07:00:00Z", "9999-12-31T23:59:59Z", "end_at"),
                  "starting 0001-01-01": ("0001-01-01T00:00:00Z", "2027-01-04T08:00:00Z", "start_at")}


@pytest.fixture
def recorder(studio_a):
    return factories.RecorderFactory(studio=studio_a)


@pytest.fixture
def channel(studio_a):
    return factories.ChannelFactory(studio=studio_a)


def _iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def _schedule_body(recorder, **change) -> dict:
    return {"recorder": recorder.pk, "name": "Night", "start_at": _iso(START), "end_at": _iso(END), **change}


def _show_body(channel, **change) -> dict:
    return {"channel": channel.pk, "name": "Night", "start_at": _iso(START), "end_at": _iso(END), **change}


def _assert_refused(response, code: str, fields: set[str]) -> dict:
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert (error["code"], set(error["fields"])) == (code, fields), error
    return error


def _admin_window(start: str, end: str, **fields) -> dict:
    """An admin add form's fields for a window given as ISO dates and times in UTC (the admin's zone)."""
    return {"start_at_0": start[:10], "start_at_1": start[11:19], "end_at_0": end[:10], "end_at_1": end[11:19],
            "recurrence": "none", "rrule": "", "skip_dates": "", **fields}


_SHOW_INLINES = {"instances-TOTAL_FORMS": 0, "instances-INITIAL_FORMS": 0}


def _quick(expand):
    """Run ``expand``, assert it returned within QUICK seconds, and return its result."""
    began = time.monotonic()
    result = expand()
    elapsed = time.monotonic() - began
    assert elapsed < QUICK, f"took {elapsed:.2f} s"
    return result


# -- Rules that never match are refused on save --------------------------------------------------------------


@pytest.mark.parametrize("rule", NEVER_MATCHING.values(), ids=list(NEVER_MATCHING))
def test_a_rule_that_never_matches_is_refused_by_the_schedules_api(api, operator_a, recorder, rule):
    response = api(operator_a).post("/api/v1/schedules/", _schedule_body(recorder, recurrence="rrule", rrule=rule),
                                    format="json")
    error = _assert_refused(response, "rrule_never_matches", {"rrule"})
    assert f"{RULE_HORIZON_YEARS} years" in error["message"]
    assert not RecorderSchedule.objects.exists()


@pytest.mark.parametrize("rule", NEVER_MATCHING.values(), ids=list(NEVER_MATCHING))
def test_a_rule_that_never_matches_is_refused_by_the_shows_api(api, operator_a, channel, rule):
    body = _show_body(channel, recurrence="rrule", rrule=rule)
    response = api(operator_a).post("/api/v1/shows/", body, format="json")
    _assert_refused(response, "rrule_never_matches", {"rrule"})
    assert not Show.objects.exists()


def test_a_rule_that_never_matches_is_refused_by_the_admin_forms(client, superuser, recorder, channel):
    client.force_login(superuser)
    window = _admin_window(_iso(START), _iso(END), recurrence="rrule", rrule=NEVER_MATCHING["30 February"])
    for url, fields in ((reverse("admin:recorders_recorderschedule_add"), {"recorder": recorder.pk, "name": "Night"}),
                        (reverse("admin:playout_show_add"), {"channel": channel.pk, "name": "Night", **_SHOW_INLINES})):
        response = client.post(url, {**window, **fields})
        assert response.status_code == 200
        assert f"starts no window within {RULE_HORIZON_YEARS} years" in response.content.decode()
    assert not RecorderSchedule.objects.exists() and not Show.objects.exists()


@pytest.mark.parametrize(("rule", "code"), [
    ("FREQ=MINUTELY;INTERVAL=30", "rrule_too_frequent"),
    ("FREQ=SECONDLY", "rrule_too_frequent"),
    ("FREQ=HOURLY;BYMINUTE=0,30", "rrule_too_frequent"),
    ("FREQ=HOURLY;BYSETPOS=2", "rrule_hourly_setpos"),
    ("FREQ=DAILY;COUNT=100000", "rrule_count_too_large"),
], ids=["every 30 minutes", "every second", "twice an hour", "hourly BYSETPOS", "a COUNT of 100000"])
def test_rules_finer_than_hourly_or_counting_far_are_refused(api, operator_a, recorder, rule, code):
    response = api(operator_a).post("/api/v1/schedules/", _schedule_body(recorder, recurrence="rrule", rrule=rule),
                                    format="json")
    _assert_refused(response, code, {"rrule"})


# -- Rows that hold one anyway (a raw UPDATE) expand at once -----------------------------------------------------


@pytest.fixture(params=WRITTEN_RAW.values(), ids=list(WRITTEN_RAW))
def written_raw(request, recorder, channel):
    """A daily schedule and show whose rule a raw UPDATE replaced with one that never matches."""
    schedule = factories.ScheduleFactory(recorder=recorder, start_at=START, end_at=END, recurrence="daily")
    show = factories.ShowFactory(channel=channel, start_at=START, end_at=END, recurrence="daily")
    for model, row in ((RecorderSchedule, schedule), (Show, show)):
        model.objects.filter(pk=row.pk).update(recurrence="rrule", rrule=request.param)
    return RecorderSchedule.objects.get(pk=schedule.pk), Show.objects.get(pk=show.pk)


def test_a_raw_rule_that_never_matches_has_no_next_window_found_at_once(written_raw):
    schedule, show = written_raw
    for window in written_raw:
        assert _quick(window.following_window) is None
        assert _quick(lambda window=window: list(window.series_windows(not_before=START))) == []
    assert _quick(lambda: services.schedule_queue_next(schedule=schedule)) is None
    assert _quick(lambda: timeline_refresh(channel=show.channel, now=START)) == 0


def test_the_admin_lists_rows_with_a_raw_rule_at_once(client, superuser, written_raw):
    client.force_login(superuser)
    for window in written_raw:
        column = admin.site._registry[type(window)].next_window
        assert _quick(lambda window=window, column=column: column(window)) == "—"
        changelist = reverse(f"admin:{window._meta.app_label}_{window._meta.model_name}_changelist")
        response = _quick(lambda changelist=changelist: client.get(changelist))
        assert response.status_code == 200
        assert window.name in response.content.decode()


def test_the_occurrences_action_answers_at_once_for_a_raw_rule(api, operator_a, written_raw):
    schedule, _ = written_raw
    url = f"/api/v1/schedules/{schedule.pk}/occurrences/"
    response = _quick(lambda: api(operator_a).get(url, {"until": "2199-01-01T00:00:00Z"}))
    assert (response.status_code, response.json()["occurrences"]) == (200, [])


# -- Dates outside the station's years -------------------------------------------------------------------------


@pytest.mark.parametrize("window", ABSURD_WINDOWS.values(), ids=list(ABSURD_WINDOWS))
def test_absurd_dates_are_refused_by_the_api(api, operator_a, recorder, channel, window):
    start, end, field = window
    client = api(operator_a)
    for path, body in (("/api/v1/schedules/", _schedule_body(recorder, start_at=start, end_at=end)),
                       ("/api/v1/shows/", _show_body(channel, start_at=start, end_at=end))):
        error = _assert_refused(client.post(path, body, format="json"), "date_out_of_range", {field})
        assert "2000-01-01 to 2199-12-31" in error["message"]
    assert not RecorderSchedule.objects.exists() and not Show.objects.exists()


@pytest.mark.parametrize("skip_dates", [["9999-12-31"], ["0001-01-01"], ["2027-01-05"] * 1001],
                         ids=["9999-12-31", "0001-01-01", "1001 skip dates"])
def test_absurd_skip_dates_are_refused_by_the_api(api, operator_a, recorder, skip_dates):
    code = "too_many_skip_dates" if len(skip_dates) > 1 else "date_out_of_range"
    body = _schedule_body(recorder, recurrence="daily", skip_dates=skip_dates)
    _assert_refused(api(operator_a).post("/api/v1/schedules/", body, format="json"), code, {"skip_dates"})


@pytest.mark.parametrize("window", ABSURD_WINDOWS.values(), ids=list(ABSURD_WINDOWS))
def test_absurd_dates_are_refused_by_the_admin_forms(client, superuser, recorder, channel, window):
    show = factories.ShowFactory(channel=channel)
    client.force_login(superuser)
    window = _admin_window(*window[:2])
    for url, fields, message in (
        (reverse("admin:recorders_recorderschedule_add"), {"recorder": recorder.pk, "name": "Night"},
         "is outside the years this station schedules"),
        (reverse("admin:playout_show_add"), {"channel": channel.pk, "name": "Night", **_SHOW_INLINES},
         "is outside the years this station schedules"),
        (reverse("admin:playout_showinstance_add"), {"show": show.pk, "channel": channel.pk},
         "Windows lie between 2000-01-01 and 2199-12-31."),
    ):
        response = client.post(url, {**window, **fields})
        assert response.status_code == 200, url
        assert message in response.content.decode(), url
    assert not RecorderSchedule.objects.exists() and not ShowInstance.objects.exists()
    assert list(Show.objects.all()) == [show]


FAR_END = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
FAR_START = datetime(1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("change", [
    {"end_at": FAR_END}, {"start_at": FAR_START}, {"series_end_at": FAR_END}, {"series_start_at": FAR_START},
    {"skip_dates": [date(9999, 12, 31)]}, {"skip_dates": [date(1, 1, 1)]}, {"skip_dates": [date(2027, 1, 5)] * 1001},
], ids=["end 9999", "start 0001", "series end 9999", "series start 0001", "skip 9999", "skip 0001", "1001 skips"])
def test_the_database_refuses_absurd_dates_written_raw(recorder, channel, change):
    schedule = factories.ScheduleFactory(recorder=recorder, start_at=START, end_at=END, recurrence="daily")
    show = factories.ShowFactory(channel=channel, start_at=START, end_at=END, recurrence="daily")
    for model, row in ((RecorderSchedule, schedule), (Show, show)):
        with pytest.raises(IntegrityError, match="_in_range"), transaction.atomic():
            model.objects.filter(pk=row.pk).update(**change)
    instance = factories.ShowInstanceFactory(show=show)
    window_change = {name: value for name, value in change.items() if name in ("start_at", "end_at")}
    if window_change:
        with pytest.raises(IntegrityError, match="show_instance_dates_in_range"), transaction.atomic():
            ShowInstance.objects.filter(pk=instance.pk).update(**window_change)


# -- Rolls and segments ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "code"), [
    ({"segment_seconds": 0}, "min_value"), ({"segment_seconds": 86400}, "max_value"),
    ({"pre_roll_seconds": 7200}, "max_value"), ({"post_roll_seconds": 86400}, "max_value"),
], ids=["no segments", "day-long segments", "2-hour pre-roll", "day-long post-roll"])
def test_rolls_and_segments_out_of_range_are_refused(api, operator_a, studio_a, change, code):
    body = {"studio": studio_a.pk, "name": "Line", "source_url": "tone:1000", **change}
    _assert_refused(api(operator_a).post("/api/v1/recorders/", body, format="json"), code, set(change))
    recorder = factories.RecorderFactory(studio=studio_a)
    with pytest.raises(IntegrityError, match="_in_range"), transaction.atomic():
        Recorder.objects.filter(pk=recorder.pk).update(**change)


def test_every_pre_roll_the_database_holds_is_armed_on_time(studio_a):
    node = factories.NodeFactory(capabilities=["record"])
    # A 2-hour pre-roll was stored, and armed an hour late: windows_to_arm looked an hour ahead.
    with pytest.raises(IntegrityError, match="recorder_rolls_in_range"), transaction.atomic():
        factories.RecorderFactory(studio=studio_a, node=node, pre_roll_seconds=2 * 3600)
    until = datetime(2027, 1, 4, 6, tzinfo=UTC)
    at_the_limit = factories.ScheduleFactory(
        recorder=factories.RecorderFactory(studio=studio_a, node=node, pre_roll_seconds=MAX_ROLL_SECONDS),
        start_at=until + timedelta(seconds=MAX_ROLL_SECONDS), end_at=until + timedelta(hours=3))
    a_second_later = factories.ScheduleFactory(
        recorder=factories.RecorderFactory(studio=studio_a, node=node, pre_roll_seconds=MAX_ROLL_SECONDS),
        start_at=until + timedelta(seconds=MAX_ROLL_SECONDS + 1), end_at=until + timedelta(hours=3))
    assert selectors.windows_to_arm(node, until=until) == [at_the_limit]
    assert selectors.windows_to_arm(node, until=until + timedelta(seconds=1)) == [at_the_limit, a_second_later]
