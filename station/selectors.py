"""Reads of the station core that the admin and the API both decide from."""

import itertools
from datetime import datetime

from station import recurrence
from station.models import RecurringWindow, StudioMembership


def is_member(user) -> bool:
    return StudioMembership.objects.filter(user=user).exists()


def is_operator(user) -> bool:
    """Whether ``user`` operates a studio, asked once per user object.

    Each request loads its own user (an admin page asks once per model it lists); code that keeps
    a user object across requests or role changes must not rely on this answer.
    """
    if (known := getattr(user, "_station_is_operator", None)) is None:
        known = user._station_is_operator = StudioMembership.objects.filter(
            user=user, role=StudioMembership.Role.OPERATOR).exists()
    return known


def window_occurrences(window: RecurringWindow, *, until: datetime, limit: int) -> list[tuple[datetime, datetime]]:
    """A series' (start, end) UTC windows from this window on that start before ``until``, at most ``limit``."""
    if window.recurrence == recurrence.Recurrence.NONE:
        series = iter([(window.start_at, window.end_at)])  # this window itself, even when moved by start-now
    else:
        series = window.series_windows(not_before=window.start_at, limit=limit)
    return list(itertools.takewhile(lambda occurrence: occurrence[0] < until, series))
