"""State changes of the station core."""

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from station import events, fencing
from station.db import save_changed
from station.errors import UserError
from station.models import Alert, EventType, Node, RecurringWindow, Studio, new_calendar_token

logger = logging.getLogger(__name__)


@transaction.atomic
def alert_acknowledge(*, alert: Alert, user) -> Alert:
    """Mark an alert seen by a person; acknowledging twice is refused."""
    now = timezone.now()
    if not Alert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(acknowledged_at=now, acknowledged_by=user):
        raise UserError("alert_already_acknowledged", _("This alert was already acknowledged."))
    alert.acknowledged_at, alert.acknowledged_by = now, user
    events.publish(studio_id=alert.studio_id, type=EventType.ALERT, payload=events.alert_row(alert))
    return alert


def alert_raise(*, studio: Studio | int, code: str, message: str, subject: str = "", severity=Alert.Severity.WARNING) -> Alert:
    """Tell the on-air desk about a problem (logged too); an identical open alert is not repeated."""
    studio_id = studio if isinstance(studio, int) else studio.pk
    return alerts_raise(studio_id=studio_id, alerts=[Alert(code=code, subject=subject, message=str(message),
                                                           severity=severity)])[0]


def alerts_raise(*, studio_id: int, alerts: list[Alert]) -> list[Alert]:
    """Raise a studio's alerts at once (an outage's, one per recorder): the open ones already raised are not repeated.

    Returns each alert as stored, in order: the one already open where it repeats one.
    """
    for alert in alerts:
        alert.studio_id, alert.message = studio_id, str(alert.message)
    open_ones = Alert.objects.filter(studio_id=studio_id, acknowledged_at__isnull=True,
                                     code__in={alert.code for alert in alerts},
                                     subject__in={alert.subject for alert in alerts}).order_by("created_at")
    repeated = {(alert.code, alert.subject, alert.message): alert for alert in open_ones}
    fresh = [alert for alert in alerts if (alert.code, alert.subject, alert.message) not in repeated]
    Alert.objects.bulk_create(fresh)
    for alert in fresh:
        logger.warning("alert %s (%s): %s", alert.code, alert.subject, alert.message)
    if fresh:
        events.publish_many(studio_id=studio_id, type=EventType.ALERT,
                            payloads=[events.alert_row(alert) for alert in fresh])
    return [repeated.get((alert.code, alert.subject, alert.message), alert) for alert in alerts]


@transaction.atomic
def alerts_clear(*, studio_id: int, code: str, subject: str) -> int:
    """A problem that went away by itself (a source's audio came back): its open alerts are closed, for all to see."""
    now = timezone.now()
    cleared = list(Alert.objects.select_for_update().filter(studio_id=studio_id, code=code, subject=subject,
                                                            acknowledged_at__isnull=True))
    Alert.objects.filter(pk__in=[alert.pk for alert in cleared]).update(acknowledged_at=now)
    for alert in cleared:
        alert.acknowledged_at = now
    if cleared:
        events.publish_many(studio_id=studio_id, type=EventType.ALERT, payloads=[events.alert_row(a) for a in cleared])
    return len(cleared)


@transaction.atomic
def node_remove(*, node: Node) -> None:
    """Remove a node whose agent is not running (a running one would register it again at its next heartbeat).

    The row is locked while it is checked, so a heartbeat waits for the delete instead of slipping in between.
    """
    locked = Node.objects.select_for_update().filter(pk=node.pk).first()
    if locked is None:
        return
    if locked.is_online():
        raise UserError("node_online", _("%(node)s is online: stop its agent before removing the node."), {"node": locked.name})
    locked.delete()


@transaction.atomic
def node_register(*, name: str, hostname: str, version: str, capture_devices: list[str] = ()) -> Node:
    """An agent process starts as node ``name`` (registered on first contact): it gets a new agent epoch, so an older
    process still running as the node (frozen, cut off) is refused from here on, for the node and for its channels."""
    reported = _agent_report(hostname=hostname, version=version, capture_devices=capture_devices)
    node, _created = Node.objects.get_or_create(
        name=name, defaults={"capabilities": [Node.Capability.RECORD, Node.Capability.PLAYOUT], **reported})
    Node.objects.filter(pk=node.pk).update(agent_epoch=F("agent_epoch") + 1, **reported)
    node.refresh_from_db()
    return node


def node_heartbeat(*, node: Node, hostname: str, version: str, capture_devices: list[str] = ()) -> Node:
    """Record that the node's agent is alive and what it offers; refused (Fenced) if another agent process registered
    as the node since this one did."""
    reported = _agent_report(hostname=hostname, version=version, capture_devices=capture_devices)
    if not Node.objects.filter(pk=node.pk, agent_epoch=node.agent_epoch).update(**reported):
        raise fencing.Fenced(Node, node.pk, node.agent_epoch)
    node.refresh_from_db()
    return node


def _agent_report(*, hostname: str, version: str, capture_devices: list[str]) -> dict:
    return {"last_heartbeat_at": timezone.now(), "hostname": hostname, "agent_version": version,
            "capture_devices": list(capture_devices)}


def record_edit_save(*, record, fields=None) -> None:
    """Save what a person wrote in the admin or the API: a new record whole, an edited one only ``fields``.

    A window they moved becomes the anchor of its series: its rule is computed from it from now on.
    """
    if fields is None:
        record.save()
        return
    fields = list(fields)
    if isinstance(record, RecurringWindow) and record.moved_since_loaded():
        record.anchor_series()
        fields += record.ANCHOR_FIELDS
    save_changed(record, fields)


def studio_new_calendar_token(*, studio: Studio) -> str:
    """A new token for the studio's private calendar feeds: the addresses handed out before stop working."""
    studio.calendar_token = new_calendar_token()
    Studio.objects.filter(pk=studio.pk).update(calendar_token=studio.calendar_token)
    return studio.calendar_token
