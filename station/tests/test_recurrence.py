import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from django.core.exceptions import ValidationError

from recorders.models import RecorderSchedule
from station.errors import UserError
from station.recurrence import RULE_HORIZON, occurrences, to_utc
from station.tests.factories import ChannelFactory, RecorderFactory, ShowFactory

LONDON = ZoneInfo("Europe/London")


def _local(windows, zone):
    return [(s.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"), e.astimezone(zone).strftime("%H:%M")) for s, e in windows]


def test_weekly_0130_london_stays_at_0130_across_both_clock_changes():
    start = to_utc(datetime(2026, 3, 15, 1, 30), LONDON)
    end = to_utc(datetime(2026, 3, 15, 2, 15), LONDON)
    windows = list(occurrences(start_at=start, end_at=end, recurrence="weekly", zone=LONDON, limit=34))
    local_starts = {s.astimezone(LONDON).strftime("%H:%M") for s, _ in windows}
    # 29 March 01:30 does not exist (clocks jump 01:00 → 02:00): documented rule moves it by the gap.
    assert _local(windows[2:3], LONDON) == [("2026-03-29 02:30 BST", "03:15")]
    assert local_starts == {"01:30", "02:30"}
    assert _local(windows[1:2] + windows[3:4], LONDON) == [("2026-03-22 01:30 GMT", "02:15"), ("2026-04-05 01:30 BST", "02:15")]
    autumn = [w for w in windows if w[0].astimezone(LONDON).date() == date(2026, 10, 25)]
    assert _local(autumn, LONDON) == [("2026-10-25 01:30 BST", "02:15")]  # ambiguous: the first 01:30
    assert _local(windows[-1:], LONDON) == [("2026-11-01 01:30 GMT", "02:15")]


def test_skip_dates_leave_out_local_days():
    start = to_utc(datetime(2026, 6, 1, 7, 0), LONDON)
    end = to_utc(datetime(2026, 6, 1, 8, 0), LONDON)
    windows = list(occurrences(start_at=start, end_at=end, recurrence="daily", zone=LONDON, skip_dates=[date(2026, 6, 2)], limit=2))
    assert [s.astimezone(LONDON).date() for s, _ in windows] == [date(2026, 6, 1), date(2026, 6, 3)]


def test_invalid_rrule_is_a_user_error():
    start = to_utc(datetime(2026, 6, 1, 7, 0), LONDON)
    with pytest.raises(UserError) as raised:
        list(occurrences(start_at=start, end_at=start, recurrence="rrule", rule_text="FREQ=SOMETIMES", zone=LONDON))
    assert raised.value.code == "rrule_invalid"


def test_an_rrule_with_a_utc_until_from_a_calendar_is_read_in_local_time():
    start = to_utc(datetime(2026, 6, 1, 7, 0), LONDON)
    windows = list(occurrences(start_at=start, end_at=start, recurrence="rrule", zone=LONDON,
                               rule_text="RRULE:FREQ=DAILY;UNTIL=20260603T060000Z"))
    assert [s.astimezone(LONDON).day for s, _ in windows] == [1, 2, 3]  # 06:00Z is 07:00 BST: the 3rd is in


# -- Bounded expansions: the horizon, and starting near the windows asked for ------------------------------------

# (rule, series start in London time): long-running series of every shape the restart handles
LONG_RUNNING = [
    ("FREQ=DAILY", "2003-01-31 23:30"),
    ("FREQ=DAILY;INTERVAL=3;BYHOUR=7,19;BYSETPOS=2", "2011-07-04 07:00:15"),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH,SA;BYSETPOS=2", "2011-07-06 01:30"),
    ("FREQ=WEEKLY;BYDAY=MO,WE,FR;BYSETPOS=-1;WKST=SU", "2019-12-30 12:00"),
    ("FREQ=HOURLY;INTERVAL=7;BYMINUTE=15", "2024-03-30 22:15"),
    ("FREQ=HOURLY;INTERVAL=3;BYHOUR=1,7,13,19", "2024-10-26 01:00"),
    ("FREQ=MONTHLY;INTERVAL=3;BYDAY=-1FR", "2000-01-28 18:00"),
    ("FREQ=MONTHLY;BYMONTHDAY=31", "2003-01-31 06:00"),
    ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", "2010-05-31 09:00"),
    ("FREQ=YEARLY", "2000-02-29 07:00"),
    ("FREQ=YEARLY;INTERVAL=3", "2000-03-31 07:00"),
    ("FREQ=YEARLY;BYWEEKNO=1,53;BYDAY=MO", "2004-12-27 07:00"),
    ("FREQ=YEARLY;BYEASTER=-2", "2001-04-13 10:00"),
    ("FREQ=YEARLY;INTERVAL=2;BYMONTH=3,10;BYDAY=-1SU;BYHOUR=1", "2000-03-26 01:00"),
    ("FREQ=DAILY;COUNT=900", "2025-06-01 07:00"),
]


def _walked_from_the_first_window(rule_text, local_start, not_before, count):
    """The windows as found before expansions were bounded (dateutil from the series' start), within the horizon."""
    rule = rrulestr(rule_text, dtstart=local_start)
    starts = (to_utc(start, LONDON) for start in rule.xafter(not_before.astimezone(LONDON).replace(tzinfo=None)
                                                              - timedelta(days=1), inc=True))
    within = itertools.takewhile(lambda start: start <= not_before + RULE_HORIZON, starts)
    return list(itertools.islice((start for start in within if start >= not_before), count))


@pytest.mark.parametrize(("rule_text", "local_start"), LONG_RUNNING, ids=[rule for rule, _ in LONG_RUNNING])
@pytest.mark.parametrize("not_before", [
    datetime(2025, 3, 30, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
    datetime(2027, 2, 28, 23, 0, tzinfo=UTC),
], ids=["spring", "autumn", "February"])
def test_a_long_running_series_has_the_windows_it_had_when_walked_from_its_first(rule_text, local_start, not_before):
    local_start = datetime.fromisoformat(local_start)
    start = to_utc(local_start, LONDON)
    windows = list(occurrences(start_at=start, end_at=start + timedelta(hours=1), recurrence="rrule",
                               rule_text=rule_text, zone=LONDON, not_before=not_before, limit=40))
    assert windows
    assert [s for s, _ in windows] == _walked_from_the_first_window(rule_text, local_start, not_before, 40)


def _next_start(rule_text, first_start):
    start = to_utc(first_start, LONDON)
    window = next(occurrences(start_at=start, end_at=start + timedelta(hours=1), recurrence="rrule",
                              rule_text=rule_text, zone=LONDON, not_before=start + timedelta(hours=1)), None)
    return window and window[0].astimezone(LONDON).replace(tzinfo=None)


@pytest.mark.parametrize("rule_text", [
    "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=7", "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=YEARLY;BYYEARDAY=60;BYMONTH=2",
])
def test_a_29_february_show_finds_its_next_window_four_years_on_and_across_2100(rule_text):
    assert _next_start(rule_text, datetime(2026, 3, 2, 7, 0)) == datetime(2028, 2, 29, 7, 0)
    assert _next_start(rule_text, datetime(2096, 2, 29, 7, 0)) == datetime(2104, 2, 29, 7, 0)  # 2100 is no leap year


def test_a_series_ends_with_the_stations_years():
    start = to_utc(datetime(2199, 12, 30, 12, 0), UTC)
    windows = list(occurrences(start_at=start, end_at=start + timedelta(hours=1), recurrence="daily", zone=UTC))
    assert [s.date() for s, _ in windows] == [date(2199, 12, 30), date(2199, 12, 31)]


def test_an_easter_offset_outside_the_year_is_a_user_error():
    start = to_utc(datetime(2026, 6, 1, 7, 0), LONDON)
    with pytest.raises(UserError) as raised:
        list(occurrences(start_at=start, end_at=start, recurrence="rrule", rule_text="FREQ=YEARLY;BYEASTER=400",
                         zone=LONDON))
    assert raised.value.code == "rrule_invalid"


@pytest.mark.django_db
@pytest.mark.parametrize(("rule", "next_start"), [
    ("FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=7", datetime(2028, 2, 29, 7, tzinfo=UTC)),
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", datetime(2028, 2, 29, 7, tzinfo=UTC)),
    ("FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13", datetime(2027, 8, 13, 6, tzinfo=UTC)),  # 07:00 BST
], ids=["hourly on 29 February", "yearly on 29 February", "Friday the 13th"])
def test_a_rule_that_matches_rarely_is_saved_and_its_next_window_found(api, operator_a, studio_a, rule, next_start):
    body = {"recorder": RecorderFactory(studio=studio_a).pk, "name": "Rare", "start_at": "2027-01-04T07:00:00Z",
            "end_at": "2027-01-04T08:00:00Z", "recurrence": "rrule", "rrule": rule}
    response = api(operator_a).post("/api/v1/schedules/", body, format="json")
    assert response.status_code == 201, response.content
    assert RecorderSchedule.objects.get().following_window()[0] == next_start


@pytest.mark.django_db
@pytest.mark.parametrize(("rule", "code"), [
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO", "rrule_windows_too_far_apart"),  # 29 February 2044, then 2072
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;COUNT=1", None),  # a series of one needs no window after it
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;UNTIL=20450101T000000Z", None),
])
def test_a_series_whose_windows_are_further_apart_than_the_horizon_is_refused_unless_it_ends(studio_a, rule, code):
    first = to_utc(datetime(2044, 2, 29, 7, 0), LONDON)
    show = ShowFactory.build(channel=ChannelFactory(studio=studio_a), start_at=first, end_at=first + timedelta(hours=1),
                             recurrence="rrule", rrule=rule)
    if code is None:
        show.full_clean()
        return
    with pytest.raises(ValidationError) as refused:
        show.full_clean()
    assert [error.code for error in refused.value.error_dict["rrule"]] == [code]
