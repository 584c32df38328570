"""State changes of the station core."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from station import dashboard, events
from station.errors import UserError
from station.models import Alert, Node, Studio

logger = logging.getLogger(__name__)


@transaction.atomic
def alert_acknowledge(*, alert: Alert, user) -> Alert:
    """Mark an alert seen by a person; acknowledging twice is refused."""
    now = timezone.now()
    if not Alert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(acknowledged_at=now, acknowledged_by=user):
        raise UserError("alert_already_acknowledged", _("This alert was already acknowledged."))
    alert.acknowledged_at, alert.acknowledged_by = now, user
    events.publish(studio_id=alert.studio_id, type="station.alert", payload=dashboard.alert_row(alert))
    return alert


def alert_raise(*, studio: Studio | int, code: str, message: str, subject: str = "", severity=Alert.Severity.WARNING) -> Alert:
    """Tell the on-air desk about a problem (logged too); an identical open alert is not repeated."""
    studio_id = studio if isinstance(studio, int) else studio.pk
    repeated = Alert.objects.filter(
        studio_id=studio_id, code=code, subject=subject, message=str(message), acknowledged_at__isnull=True
    ).first()
    if repeated:
        return repeated
    alert = Alert.objects.create(studio_id=studio_id, code=code, message=str(message), subject=subject, severity=severity)
    logger.warning("alert %s (%s): %s", code, subject, message)
    events.publish(studio_id=studio_id, type="station.alert", payload=dashboard.alert_row(alert))
    return alert


def node_remove(*, node: Node) -> None:
    """Remove a node whose agent is not running (a running one would register it again at its next heartbeat).

    The check and the delete are one statement, so a heartbeat in between can't slip through.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.NODE_HEARTBEAT_TIMEOUT)
    deleted, _by_model = Node.objects.filter(
        Q(last_heartbeat_at__isnull=True) | Q(last_heartbeat_at__lt=cutoff), pk=node.pk).delete()
    if not deleted and Node.objects.filter(pk=node.pk).exists():
        raise UserError("node_online", _("%(node)s is online: stop its agent before removing the node."), {"node": node.name})


def node_heartbeat(*, name: str, hostname: str, version: str) -> Node:
    """Register a node agent on first contact, and record that it is alive."""
    now = timezone.now()
    node, created = Node.objects.get_or_create(
        name=name,
        defaults={"hostname": hostname, "capabilities": [Node.Capability.RECORD, Node.Capability.PLAYOUT],
                  "last_heartbeat_at": now, "agent_version": version},
    )
    if not created:
        Node.objects.filter(pk=node.pk).update(last_heartbeat_at=now, hostname=hostname, agent_version=version)
        node.refresh_from_db()
    return node
