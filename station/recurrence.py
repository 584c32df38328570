"""Recurrence computed in a studio's local time, so a 07:00 show stays at 07:00 across DST.

Rules for local times a clock change makes odd:
- a nonexistent local time (in the spring-forward gap) moves forward by the gap:
  02:30 on the night clocks jump from 02:00 to 03:00 becomes 03:30;
- an ambiguous local time (in the autumn fall-back hour) is the first of the two,
  still on summer time.
Window ends follow the wall clock the same way, so back-to-back windows stay
back to back on the night of a clock change; a window that would collapse (it
starts in the gap and ends just after it) keeps its wall-clock length.

Expansions are bounded. dateutil checks a rule's UNTIL and COUNT only against dates that match,
so a rule that never matches (30 February) walks to the year 9999: seconds of the node agent's
time at each look. Here a walk
- starts at one of the rule's own periods shortly before the windows asked for, not at the
  series' first window (a rule with a COUNT starts there, and counts at most MAX_RULE_COUNT);
- stops RULE_HORIZON past the first window asked for, and at the station's last day, whether or
  not anything matched;
- refuses rules finer than hourly, whose walks cost more than broadcast windows are worth.
Saving a series proves its rule starts windows within RULE_HORIZON (``prove_series``), so a
saved series finds its next window for as long as it has one.
"""

import functools
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil import rrule as dateutil_rrule
from django.db import models
from django.utils.translation import gettext_lazy as _

from station.bounds import LATEST
from station.errors import UserError

UTC = ZoneInfo("UTC")

RULE_HORIZON_YEARS = 8
# How far apart a series' windows may be: 29 February 2104 comes 8 years after 29 February 2096,
# since 2100 is no leap year. Walking this far through a rule that never matches costs 5 to 20 ms.
RULE_HORIZON = timedelta(days=366 * RULE_HORIZON_YEARS)
MAX_RULE_COUNT = 1000  # a rule with a COUNT is walked from its first window: at most this many
MAX_WINDOWS_A_DAY = 24  # no finer than hourly, however the rule's BYHOUR, BYMINUTE and BYSECOND combine
MAX_SET_POSITIONS = 10  # BYSETPOS picks a few windows of a period; each position costs a pass over the period


class Recurrence(models.TextChoices):
    NONE = "none", _("Once")
    DAILY = "daily", _("Daily")
    WEEKLY = "weekly", _("Weekly")
    RRULE = "rrule", _("Custom rule (RFC 5545 RRULE)")


_FIXED_RULES = {Recurrence.DAILY: "FREQ=DAILY", Recurrence.WEEKLY: "FREQ=WEEKLY"}


def to_utc(local_naive: datetime, zone: ZoneInfo) -> datetime:
    """Return the UTC instant of a local wall time under the module's gap/fold rules."""
    # PEP 495: fold=0 reads a nonexistent time with the offset in force before
    # the gap (so it lands after it) and an ambiguous one as its first instance.
    return local_naive.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _local(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


# Easter falls on the 81st to 116th day of a year; dateutil fails on an offset that leaves the year
# (or, going back past 1 January, reads it from the year's end).
_EASTER_OFFSETS = range(-80, 250)
_UTC_UNTIL = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)


def _local_until(match: re.Match, zone: ZoneInfo) -> str:
    until = datetime.strptime(match[1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return "UNTIL=" + _local(until, zone).strftime("%Y%m%dT%H%M%S")


def rfc_rule(recurrence: str, rrule: str) -> str:
    """The RFC 5545 rule (without ``RRULE:``) of a recurrence: a fixed one's, or the custom text as written."""
    text = _FIXED_RULES.get(recurrence) or (rrule or "").strip()
    return text[len("RRULE:"):] if text.upper().startswith("RRULE:") else text


def parse_rule(recurrence: str, rule_text: str, dtstart: datetime, zone: ZoneInfo = UTC) -> dateutil_rrule.rrule | None:
    """Return the dateutil rule for a recurrence (``dtstart`` is local, naive), or raise UserError."""
    if recurrence == Recurrence.NONE:
        return None
    text = rfc_rule(recurrence, rule_text)
    if not text:
        raise UserError("rrule_missing", _("A custom recurrence needs an RRULE, e.g. FREQ=WEEKLY;BYDAY=MO,WE."))
    try:
        # Calendars write UNTIL in UTC ("…Z"); the rule runs in local wall time, so translate it.
        text = _UTC_UNTIL.sub(lambda match: _local_until(match, zone), text)
        rule = dateutil_rrule.rrulestr(text, dtstart=dtstart, cache=False)
    except (ValueError, TypeError, OverflowError) as exc:
        raise UserError("rrule_invalid", _("The RRULE %(rule)s is not valid: %(reason)s."),
                        {"rule": text, "reason": str(exc)}, inner=exc) from exc
    if not isinstance(rule, dateutil_rrule.rrule):  # several rules, or EXDATE lines: a set of rules
        raise UserError("rrule_invalid", _("The RRULE %(rule)s is not valid: %(reason)s."),
                        {"rule": text, "reason": _("write a single rule")})
    if any(offset not in _EASTER_OFFSETS for offset in rule._byeaster or ()):
        raise UserError("rrule_invalid", _("The RRULE %(rule)s is not valid: %(reason)s."),
                        {"rule": text, "reason": _("BYEASTER must stay within Easter's year")})
    _refuse_costly(rule, text)
    return rule


def _refuse_costly(rule: dateutil_rrule.rrule, text: str) -> None:
    """Refuse a rule whose walks cost more than broadcast windows are worth: finer than hourly, or counting far."""
    # dateutil keeps a rule's parts, filled in from its start where the text leaves them out, in these
    # attributes (those its own replace() reads); none has a public accessor.
    too_frequent = UserError(
        "rrule_too_frequent",
        _("The RRULE %(rule)s starts windows more often than hourly; a series has at most %(max)d windows a day."),
        {"rule": text, "max": MAX_WINDOWS_A_DAY})
    if rule._freq > dateutil_rrule.HOURLY:  # MINUTELY, SECONDLY
        raise too_frequent
    if len(rule._byhour or range(24)) * len(rule._byminute) * len(rule._bysecond) > MAX_WINDOWS_A_DAY:
        raise too_frequent
    if rule._freq == dateutil_rrule.HOURLY and rule._bysetpos:
        # An hour holds one window (or a few, with BYMINUTE): BYSETPOS picks nothing worth its cost, a walk
        # through every hour of the horizon when it picks a position the hour doesn't have.
        raise UserError("rrule_hourly_setpos",
                        _("The RRULE %(rule)s uses BYSETPOS with FREQ=HOURLY; use BYHOUR and BYMINUTE instead."),
                        {"rule": text})
    if len(rule._bysetpos or ()) > MAX_SET_POSITIONS:
        raise UserError("rrule_too_many_positions",
                        _("The RRULE %(rule)s lists %(count)d BYSETPOS positions; at most %(max)d."),
                        {"rule": text, "count": len(rule._bysetpos), "max": MAX_SET_POSITIONS})
    if rule._count is not None and rule._count > MAX_RULE_COUNT:
        raise UserError("rrule_count_too_large",
                        _("The RRULE %(rule)s counts %(count)d windows; at most %(max)d, "
                          "or use UNTIL for a longer series."),
                        {"rule": text, "count": rule._count, "max": MAX_RULE_COUNT})


class _OutOfMonths(Exception):
    """A walk has entered more months than it was given."""


class _MonthCountedRule(dateutil_rrule.rrule):
    """A rule whose walk stops once it has entered a given number of months, whether it matched or not.

    dateutil's walk (``rrule._iter``) reads ``_byeaster`` once as it starts and each time it enters
    another month (``_iterinfo.rebuild``: once, twice for a BYEASTER rule), and never goes back to an
    earlier month. Counting those reads is the one way to stop a walk that matches nothing: it checks
    UNTIL and COUNT against matching dates only.
    """

    reads_left: int

    @property
    def _byeaster(self):
        self.reads_left -= 1
        if self.reads_left < 0:
            raise _OutOfMonths
        return self.__dict__["_byeaster"]


_FIXED_PERIODS = {dateutil_rrule.WEEKLY: timedelta(weeks=1), dateutil_rrule.DAILY: timedelta(days=1),
                  dateutil_rrule.HOURLY: timedelta(hours=1)}


def _restart(rule: dateutil_rrule.rrule, local_from: datetime) -> datetime:
    """Where a walk towards ``local_from`` may start: the start of one of the rule's own periods before it.

    Started there, the rule has the same windows from ``local_from`` on: its periods line up with the
    original's, and what dateutil fills in from the start (the time of day, the weekday of a weekly
    rule, the day of a monthly or yearly one) is the same. A rule with a COUNT counts from its first window.
    """
    first = rule._dtstart
    if rule._count is not None or local_from <= first:
        return first
    if rule._freq in _FIXED_PERIODS:
        period = _FIXED_PERIODS[rule._freq] * rule._interval
        # One period short: a weekly rule's first period runs from its start day, not from the week's first day.
        periods = (local_from - first) // period - 1
        return first + periods * period if periods > 0 else first
    months_a_period = rule._interval * (12 if rule._freq == dateutil_rrule.YEARLY else 1)
    periods = ((local_from.year - first.year) * 12 + local_from.month - first.month) // months_a_period
    for back in range(periods, max(periods - 12, 0), -1):
        months = first.month - 1 + back * months_a_period
        try:
            candidate = first.replace(year=first.year + months // 12, month=months % 12 + 1)
        except ValueError:
            continue  # that month has no such day (a 31st, 29 February): an earlier period has
        if candidate <= local_from:
            return candidate
    return first


def _walk(rule: dateutil_rrule.rrule, *, local_from: datetime, local_until: datetime) -> Iterator[datetime]:
    """Yield the rule's starts from ``local_from`` through ``local_until`` (local wall times), walking no further."""
    start = _restart(rule, local_from)
    walk = rule.replace(dtstart=start)
    walk.__class__ = _MonthCountedRule  # the same rule, counting the months its walk enters
    months = (local_until.year - start.year) * 12 + local_until.month - start.month
    # Past these reads the walk has entered a month after local_until's: nothing is left to yield.
    walk.reads_left = 1 + (2 if walk.__dict__["_byeaster"] else 1) * (months + 2)
    try:
        for occurrence in walk.xafter(local_from, inc=True):
            if occurrence > local_until:
                return
            yield occurrence
    except _OutOfMonths:
        return


def _search_until(since: datetime) -> datetime:
    """The instant a search for windows from ``since`` gives up at: RULE_HORIZON on, or the station's last day."""
    return min(since, LATEST - RULE_HORIZON) + RULE_HORIZON


def occurrences(
    *,
    start_at: datetime,
    end_at: datetime,
    recurrence: str,
    rule_text: str = "",
    zone: ZoneInfo,
    skip_dates: list[date] | tuple[date, ...] = (),
    not_before: datetime | None = None,
    limit: int = 1000,
) -> Iterator[tuple[datetime, datetime]]:
    """Yield (start, end) UTC windows of a series whose first window is start_at..end_at.

    ``not_before`` skips windows that start before it; ``skip_dates`` are local
    dates whose occurrence is left out. Windows are searched RULE_HORIZON from
    ``not_before`` (or the first window), at most ``limit`` of them.
    """
    local_start = _local(start_at, zone)
    wall_length = _local(end_at, zone) - local_start
    rule = parse_rule(recurrence, rule_text, local_start.replace(microsecond=0), zone)
    if rule is None:
        local_starts = iter([local_start])
    else:
        since = start_at if not_before is None else max(not_before, start_at)
        # A day early: a wall time's instant is up to a day from the same digits read in UTC.
        local_starts = _walk(rule, local_from=_local(since, zone) - timedelta(days=1),
                             local_until=_local(_search_until(since), zone))
    skipped = set(skip_dates)
    produced = 0
    for occurrence in local_starts:
        occurrence = occurrence.replace(microsecond=local_start.microsecond)  # rules work in whole seconds
        if produced >= limit:
            return
        if occurrence.date() in skipped:
            continue
        start = to_utc(occurrence, zone)
        end = to_utc(occurrence + wall_length, zone)
        if end <= start:
            # A window starting in a spring-forward gap can collapse; keep its length.
            end = start + wall_length
        if not_before is not None and start < not_before:
            continue
        if end > LATEST:
            return  # the station's years are over
        produced += 1
        yield start, end


def prove_series(*, start_at: datetime, end_at: datetime, recurrence: str, rule_text: str, zone: ZoneInfo,
                 window_end: datetime) -> None:
    """Raise UserError unless the rule starts windows within RULE_HORIZON: its first, and one after ``window_end``.

    ``start_at``..``end_at`` is the series' first window, ``window_end`` the end of the one being saved.
    A rule whose UNTIL or COUNT ends the series within the horizon needs no window after it.
    """
    rule = parse_rule(recurrence, rule_text, _local(start_at, zone).replace(microsecond=0), zone)
    if rule is None:
        return
    series = functools.partial(occurrences, start_at=start_at, end_at=end_at, recurrence=recurrence,
                               rule_text=rule_text, zone=zone, limit=1)
    params = {"rule": rule_text or _FIXED_RULES.get(recurrence, ""), "years": RULE_HORIZON_YEARS}
    if next(series(not_before=start_at), None) is None:
        raise UserError("rrule_never_matches", _(
            "The RRULE %(rule)s starts no window within %(years)d years of the first: check that its days exist "
            "(30 February does not) and that its UNTIL, COUNT and BYSETPOS leave some."), params)
    if next(series(not_before=window_end), None) is None and not _ends_by(rule, _search_until(window_end), zone):
        raise UserError("rrule_windows_too_far_apart", _(
            "The RRULE %(rule)s starts no window within %(years)d years after this one, and the station looks no "
            "further ahead: bring its windows closer together."), params)


def _ends_by(rule: dateutil_rrule.rrule, until: datetime, zone: ZoneInfo) -> bool:
    """Whether the rule has no window after ``until``: its UNTIL or COUNT, or the station's years, end it first."""
    local_until = _local(until, zone)
    if until >= LATEST or (rule._until is not None and rule._until <= local_until):
        return True
    if rule._count is None:
        return False
    return sum(1 for _ in _walk(rule, local_from=rule._dtstart, local_until=local_until)) >= rule._count
