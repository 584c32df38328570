"""Reads of the station core that the admin, the API and the dashboards' sockets decide from."""

import enum
import itertools
from datetime import datetime

from django.db.models import Exists, OuterRef
from rest_framework.authtoken.models import Token

from station import recurrence
from station.models import RecurringWindow, Studio, StudioMembership


class DashboardAccess(enum.Enum):
    GRANTED = "granted"
    NOT_AUTHENTICATED = "not authenticated"  # no session user, an unknown token, or an inactive user's
    NOT_A_MEMBER = "not a member"  # a studio the user does not see, or no such studio


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


def dashboard_access(*, studio_id: int, user, token: str | None = None) -> DashboardAccess:
    """Whether the session's ``user`` (or, when one is given, ``token``'s user) may follow studio ``studio_id``.

    A token takes one query: its user, active, and whether they see the studio, decided as
    ``Studio.objects.visible_to`` decides it (superusers see every studio, members theirs).
    """
    if token:
        studio = Studio.objects.filter(pk=studio_id)
        found = (Token.objects.filter(key=token, user__is_active=True)
                 .values_list("user__is_superuser", Exists(studio.filter(memberships__user=OuterRef("user"))), Exists(studio))
                 .first())
        if found is None:
            return DashboardAccess.NOT_AUTHENTICATED
        is_superuser, is_member, studio_exists = found
        sees_studio = studio_exists and (is_superuser or is_member)
    elif user is None or not user.is_authenticated:
        return DashboardAccess.NOT_AUTHENTICATED
    else:
        sees_studio = Studio.objects.visible_to(user).filter(pk=studio_id).exists()
    return DashboardAccess.GRANTED if sees_studio else DashboardAccess.NOT_A_MEMBER


def window_occurrences(window: RecurringWindow, *, until: datetime, limit: int) -> list[tuple[datetime, datetime]]:
    """A series' (start, end) UTC windows from this window on that start before ``until``, at most ``limit``."""
    if window.recurrence == recurrence.Recurrence.NONE:
        series = iter([(window.start_at, window.end_at)])  # this window itself, even when moved by start-now
    else:
        series = window.series_windows(not_before=window.start_at, limit=limit)
    return list(itertools.takewhile(lambda occurrence: occurrence[0] < until, series))
