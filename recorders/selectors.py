"""Reads of recorder state; the agent and the tick decide from these."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import DurationField, ExpressionWrapper, F, Q, QuerySet

from recorders.models import MAX_ROLL_SECONDS, Recorder, RecorderSchedule
from station.models import Node

Status = RecorderSchedule.Status


def recorders_for_node(node: Node) -> QuerySet[Recorder]:
    """Recorders this node records: its own, and unassigned ones if it can record."""
    if Node.Capability.RECORD not in (node.capabilities or []) or not node.enabled:
        return Recorder.objects.none()
    return Recorder.objects.filter(enabled=True).filter(Q(node=node) | Q(node__isnull=True))


def windows_to_arm(node: Node, *, until: datetime) -> list[RecorderSchedule]:
    """Pending windows on this node's recorders whose recording begins before ``until``."""
    pre_roll = ExpressionWrapper(F("recorder__pre_roll_seconds") * timedelta(seconds=1), output_field=DurationField())
    return list(
        RecorderSchedule.objects.filter(status=Status.PENDING, recorder__in=recorders_for_node(node))
        .filter(start_at__lte=until + timedelta(seconds=MAX_ROLL_SECONDS))  # no pre-roll is longer: for the index
        .alias(record_from=F("start_at") - pre_roll).filter(record_from__lte=until)  # an hour of windows isn't read
        .select_related("recorder__studio")
        .order_by("start_at")
    )


def abandoned_windows(node: Node, *, now: datetime) -> list[RecorderSchedule]:
    """Recordings whose agent stopped renewing its lease while their window is still open."""
    candidates = (
        RecorderSchedule.objects.filter(
            status__in=[Status.STARTING, Status.RUNNING],
            lease_expires_at__lt=now,
            recorder__in=recorders_for_node(node),
        )
        .select_related("recorder__studio")
        .order_by("start_at")
    )
    return [s for s in candidates if s.record_until > now]


def lease_deadline(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.AGENT_LEASE_SECONDS)
