"""The event bus: state changes people watch, published to the studio's dashboards after commit.

``publish`` stores the event in the same transaction as the change (its id is the sequence number a
reconnecting dashboard resumes from). Once the transaction commits, it is sent to the studio's
Channels group (``studio-<id>``) on the channel layer (channels-postgres, or channels-redis with
REDIS_URL), where each web process's hub hands it to its dashboards (station.event_relay). Sinks
registered with ``subscribe`` get it too, and the studio's webhooks that follow its type get a
delivery written in the same transaction (station.webhooks). A rolled-back change publishes nothing.
"""

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from station.layer_loop import on_layer_loop_sync

if TYPE_CHECKING:
    from station.models import Alert, EventType

logger = logging.getLogger(__name__)

Event = dict
_sinks: list[Callable[[Event], None]] = []


def studio_group(studio_id: int) -> str:
    return f"studio-{studio_id}"


def layer_message(event: Event) -> dict:
    """The channel-layer message for ``event``: the event, and its socket frame encoded once for every dashboard."""
    return {"type": "studio.event", "event": event, "text": event_frame(event)}


def event_frame(event: Event) -> str:
    """The text a dashboard's socket receives for ``event`` (docs/asyncapi.yaml)."""
    return json.dumps({"type": "event", "seq": event["seq"], "event": {"type": event["type"], "payload": event["payload"]}})


def subscribe(sink: Callable[[Event], None]) -> Callable[[], None]:
    """Register a sink; return a function that removes it."""
    _sinks.append(sink)
    return lambda: _sinks.remove(sink)


def publish(*, studio_id: int, type: "EventType", payload: dict) -> None:
    """Send ``type`` (e.g. ``EventType.SCHEDULE``) to the studio once the transaction commits."""
    publish_many(studio_id=studio_id, type=type, payloads=[payload])


def publish_many(*, studio_id: int, type: "EventType", payloads: list[dict]) -> None:
    """Send one ``type`` event per payload, in order, written in one statement (an outage's windows, at once)."""
    from station.models import EventType, StudioEvent

    from station import webhooks

    type = EventType(type).value  # a name not declared is refused; sinks and the layer get a plain string
    stored = StudioEvent.objects.bulk_create(StudioEvent(studio_id=studio_id, type=type, payload=payload)
                                             for payload in payloads)
    webhooks.queue_deliveries(studio_id=studio_id, event_type=type, events=stored)
    for row in stored:
        event = {"studio": studio_id, "type": type, "payload": row.payload, "seq": row.pk}
        transaction.on_commit(lambda event=event: _deliver(event))


def publish_meter(*, studio_id: int, type: str, payload: dict) -> None:
    """Send a reading (a live input's level) to the studio's dashboards now: not stored, not numbered, no webhook.

    Readings come every second or so and are stale by the next: a dashboard that misses one shows the next, and
    one that reconnects gets none of the past."""
    message = {"type": "studio.event", "studio": studio_id,
               "text": json.dumps({"type": "meter", "meter": {"type": type, "payload": payload}})}
    try:
        on_layer_loop_sync(get_channel_layer().group_send, studio_group(studio_id), message)
    except Exception:  # the next reading comes soon
        logger.exception("meter %s not sent to the dashboards", type)


def events_since(studio_id: int, seq: int, *, margin: int = 0) -> list[Event] | None:
    """The studio's events after ``seq`` (and after ``seq - margin``, those the log still has), oldest
    first; None if the log no longer reaches back to ``seq``, or never reached ``seq`` (a client that
    has seen more than the latest event: a reset database, another station, a made-up number)."""
    from station.models import StudioEvent

    log = StudioEvent.objects.aggregate(oldest=Min("id"), latest=Max("id"))
    if seq > (log["latest"] or 0) or (log["oldest"] is not None and seq < log["oldest"] - 1):
        return None
    return [{"studio": e.studio_id, "type": e.type, "payload": e.payload, "seq": e.pk}
            for e in StudioEvent.objects.filter(studio_id=studio_id, id__gt=seq - margin)]


def committed_ids(studio_id: int, *, after: int) -> list[int]:
    """Ids of the studio's events committed so far, after ``after``."""
    from station.models import StudioEvent

    return list(StudioEvent.objects.filter(studio_id=studio_id, id__gt=after).values_list("id", flat=True))


def latest_seq() -> int:
    from station.models import StudioEvent

    return StudioEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def prune(now=None) -> int:
    """Forget events older than EVENT_LOG_HOURS; a dashboard further behind gets a snapshot instead."""
    from station.models import StudioEvent

    cutoff = (now or timezone.now()) - timedelta(hours=settings.EVENT_LOG_HOURS)
    return StudioEvent.objects.filter(created_at__lt=cutoff).delete()[0]


def alert_row(alert: "Alert") -> dict:
    return {"id": alert.pk, "severity": alert.severity, "code": alert.code, "subject": alert.subject,
            "message": alert.message, "created_at": iso(alert.created_at), "acknowledged": alert.acknowledged_at is not None}


def iso(moment: datetime | None) -> str | None:
    """Fixed width (milliseconds, Z), so the strings also sort and compare as the instants do."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


def _deliver(event: Event) -> None:
    logger.debug("event %s #%s for studio %s", event["type"], event["seq"], event["studio"])
    try:
        on_layer_loop_sync(get_channel_layer().group_send, studio_group(event["studio"]), layer_message(event))
    except Exception:  # a dashboard catches up from the log when it reconnects; the change stands
        logger.exception("event %s #%s not sent to the dashboards", event["type"], event["seq"])
    for sink in list(_sinks):
        try:
            sink(event)
        except Exception:  # a broken sink must never undo or block the change it reports
            logger.exception("event sink failed for %s", event["type"])
