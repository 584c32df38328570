"""Recurrence computed in a studio's local time, so a 07:00 show stays at 07:00 across DST.

Rules for local times a clock change makes odd:
- a nonexistent local time (in the spring-forward gap) moves forward by the gap:
  02:30 on the night clocks jump from 02:00 to 03:00 becomes 03:30;
- an ambiguous local time (in the autumn fall-back hour) is the first of the two,
  still on summer time.
Window ends follow the wall clock the same way, so back-to-back windows stay
back to back on the night of a clock change; a window that would collapse (it
starts in the gap and ends just after it) keeps its wall-clock length.
"""

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil import rrule as dateutil_rrule
from django.db import models
from django.utils.translation import gettext_lazy as _

from station.errors import UserError

UTC = ZoneInfo("UTC")


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


_UTC_UNTIL = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)


def parse_rule(recurrence: str, rule_text: str, dtstart: datetime, zone: ZoneInfo = UTC) -> dateutil_rrule.rrule | None:
    """Return the dateutil rule for a recurrence (``dtstart`` is local, naive), or raise UserError."""
    if recurrence == Recurrence.NONE:
        return None
    text = _FIXED_RULES.get(recurrence) or (rule_text or "").strip()
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:"):]
    # Calendars write UNTIL in UTC ("…Z"); the rule runs in local wall time, so translate it.
    text = _UTC_UNTIL.sub(
        lambda m: "UNTIL=" + datetime.strptime(m[1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC).astimezone(zone).strftime("%Y%m%dT%H%M%S"),
        text,
    )
    if not text:
        raise UserError("rrule_missing", _("A custom recurrence needs an RRULE, e.g. FREQ=WEEKLY;BYDAY=MO,WE."))
    try:
        return dateutil_rrule.rrulestr(text, dtstart=dtstart, cache=False)
    except (ValueError, TypeError) as exc:
        raise UserError("rrule_invalid", _("The RRULE %(rule)s is not valid: %(reason)s."),
                        {"rule": text, "reason": str(exc)}, inner=exc) from exc


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
    dates whose occurrence is left out.
    """
    local_start = start_at.astimezone(zone).replace(tzinfo=None)
    wall_length = end_at.astimezone(zone).replace(tzinfo=None) - local_start
    rule = parse_rule(recurrence, rule_text, local_start.replace(microsecond=0), zone)
    if rule is None:
        local_starts = iter([local_start])
    elif not_before is not None:
        # Start near ``not_before`` instead of walking a long-running series from its first window.
        local_from = not_before.astimezone(zone).replace(tzinfo=None) - timedelta(days=1)
        local_starts = rule.xafter(local_from, inc=True)
    else:
        local_starts = iter(rule)
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
        produced += 1
        yield start, end
