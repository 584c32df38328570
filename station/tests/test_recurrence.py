from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from station.errors import UserError
from station.recurrence import occurrences, to_utc

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
