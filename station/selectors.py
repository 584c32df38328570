"""Reads of the station core that the admin, the API and the dashboards' sockets decide from."""

import enum
import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from django.contrib.auth import get_user_model
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


class DashboardAsker(NamedTuple):
    user: object  # the session's user (AnonymousUser, or None, when there is none)
    token: str | None = None  # when given, its user is the one asking


def dashboard_access(*, studio_id: int, askers: Sequence[DashboardAsker]) -> list[DashboardAccess]:
    """Whether each asker may follow studio ``studio_id``, decided as ``Studio.objects.visible_to`` decides it
    (superusers see every studio, members theirs); a token's user must be active.

    A desk connecting at once asks together: one query for all their tokens, two for all their
    session users (as they are now, and their memberships), and one whether the studio exists when
    a session superuser asks.
    """
    studio = Studio.objects.filter(pk=studio_id)
    tokens = {asker.token for asker in askers if asker.token}
    by_token = {key: sees for key, *sees in (
        Token.objects.filter(key__in=tokens, user__is_active=True)
        .values_list("key", "user__is_superuser", Exists(studio.filter(memberships__user=OuterRef("user"))), Exists(studio))
    )} if tokens else {}
    session_users = [asker.user for asker in askers
                     if not asker.token and asker.user is not None and asker.user.is_authenticated]
    # as the users are now, not as their sockets loaded them: a dashboard open for days is asked again
    superuser = dict(get_user_model().objects.filter(pk__in=[user.pk for user in session_users], is_active=True)
                     .values_list("pk", "is_superuser")) if session_users else {}
    members = set(StudioMembership.objects.filter(studio_id=studio_id, user__in=list(superuser))
                  .values_list("user_id", flat=True)) if superuser else set()
    studio_exists = any(superuser.values()) and studio.exists()

    def access(asker: DashboardAsker) -> DashboardAccess:
        if asker.token:
            if asker.token not in by_token:
                return DashboardAccess.NOT_AUTHENTICATED
            is_superuser, is_member, exists = by_token[asker.token]
            sees_studio = exists and (is_superuser or is_member)
        elif asker.user is None or not asker.user.is_authenticated or asker.user.pk not in superuser:
            return DashboardAccess.NOT_AUTHENTICATED
        else:
            sees_studio = studio_exists if superuser[asker.user.pk] else asker.user.pk in members
        return DashboardAccess.GRANTED if sees_studio else DashboardAccess.NOT_A_MEMBER

    return [access(asker) for asker in askers]


def window_occurrences(window: RecurringWindow, *, until: datetime, limit: int) -> list[tuple[datetime, datetime]]:
    """A series' (start, end) UTC windows from this window on that start before ``until``, at most ``limit``."""
    if window.recurrence == recurrence.Recurrence.NONE:
        series = iter([(window.start_at, window.end_at)])  # this window itself, even when moved by start-now
    else:
        series = window.series_windows(not_before=window.start_at, limit=limit)
    return list(itertools.takewhile(lambda occurrence: occurrence[0] < until, series))
