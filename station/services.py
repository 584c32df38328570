"""State changes of the station core."""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from station import events
from station.errors import UserError
from station.models import Alert


@transaction.atomic
def alert_acknowledge(*, alert: Alert, user) -> Alert:
    """Mark an alert seen by a person; acknowledging twice is refused."""
    now = timezone.now()
    if not Alert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(acknowledged_at=now, acknowledged_by=user):
        raise UserError("alert_already_acknowledged", _("This alert was already acknowledged."))
    alert.acknowledged_at, alert.acknowledged_by = now, user
    events.publish(studio_id=alert.studio_id, type="station.alert", payload={"id": alert.pk, "acknowledged": True})
    return alert
