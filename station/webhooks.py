"""Outgoing webhooks: each subscribed event, POSTed signed to the receiver, retried with backoff, logged.

A delivery row is written in the same transaction as the change it reports (so a rolled-back
change sends nothing and a committed one is never lost) and sent by the ``station.webhooks`` job
(a loop on the events queue) or at once from the admin. Senders claim due rows with
``FOR UPDATE SKIP LOCKED``, so any number of them never send one delivery twice at once; a claim
left by a sender that died expires after CLAIM_SECONDS and the delivery is sent again. Receivers
must therefore accept a delivery id they have seen (at-least-once), and may get events of one
webhook out of order when an earlier one is being retried. docs/webhooks.md is the receiver's guide.
"""

import hashlib
import hmac
import json
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests
import urllib3
from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from station import outbound
from station.errors import UserError
from station.models import EventType, Webhook, WebhookDelivery

logger = logging.getLogger(__name__)
CLAIM_SECONDS = 60
TIMEOUT_SECONDS = 5
BATCH = 20
SENDERS = 4
RESPONSE_EXCERPT = 120  # characters of the receiver's reply kept in the log: enough to debug, not to read a page
RESPONSE_BYTES = 4096  # read of the reply at most, once
USER_AGENT = "Stationkeeper-Webhooks/1"


def queue_deliveries(*, studio_id: int, event_type: str, events) -> int:
    """Write a delivery of each stored event for each enabled webhook of the studio that follows ``event_type``."""
    hooks = list(Webhook.objects.filter(studio_id=studio_id, enabled=True, event_types__contains=[event_type]).only("id"))
    deliveries = [WebhookDelivery(webhook=hook, event_seq=event.pk, event_type=event_type, payload=event.payload,
                                  occurred_at=event.created_at) for event in events for hook in hooks]
    WebhookDelivery.objects.bulk_create(deliveries)
    return len(deliveries)


def backoff(attempts: int) -> timedelta:
    """Wait before attempt ``attempts + 1``: 10 s, 20 s, 40 s … capped at an hour, with up to 10 % jitter."""
    seconds = min(3600, 10 * 2 ** (attempts - 1))
    return timedelta(seconds=seconds * (1 + random.uniform(0, 0.1)))


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``timestamp.body`` with the webhook's secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def claim_due(*, now=None, limit: int = BATCH, ids=None) -> list[int]:
    """Claim due deliveries (pending and due, or claimed by a sender that vanished); return their ids."""
    now = now or timezone.now()
    due = Q(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now) | Q(
        status=WebhookDelivery.Status.DELIVERING, lease_expires_at__lt=now)
    with transaction.atomic():
        candidates = WebhookDelivery.objects.filter(due)
        if ids is not None:
            candidates = candidates.filter(id__in=ids)
        claimed = list(candidates.order_by("next_attempt_at").select_for_update(skip_locked=True)
                       .values_list("id", flat=True)[:limit])
        WebhookDelivery.objects.filter(id__in=claimed).move_to(
            WebhookDelivery.Status.DELIVERING, lease_expires_at=now + timedelta(seconds=CLAIM_SECONDS))
    return claimed


def deliver_due(*, now=None) -> int:
    """Send the due deliveries (a few receivers at a time); return how many were sent."""
    claimed = claim_due(now=now)
    if claimed:
        with ThreadPoolExecutor(max_workers=SENDERS) as senders:
            list(senders.map(_send_in_thread, claimed))
    return len(claimed)


def _send_in_thread(delivery_id: int) -> None:
    try:
        send(WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id))
    finally:
        close_old_connections()


def send(delivery: WebhookDelivery) -> WebhookDelivery:
    """POST one claimed delivery and record the outcome: succeeded, a retry later, or failed for good."""
    hook = delivery.webhook
    body = json.dumps({
        "id": delivery.pk,
        "event": delivery.event_type,
        "seq": delivery.event_seq,
        "studio": hook.studio_id,
        "occurred_at": delivery.occurred_at.isoformat().replace("+00:00", "Z"),
        "payload": delivery.payload,
    }, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Stationkeeper-Event": delivery.event_type,
        "X-Stationkeeper-Delivery": str(delivery.pk),
        "X-Stationkeeper-Timestamp": timestamp,
        "X-Stationkeeper-Signature": signature(hook.secret, timestamp, body),
    }
    began = time.monotonic()
    status_code, error, excerpt = None, "", ""
    try:
        with outbound.guarded_session(user_agent=USER_AGENT) as session, session.post(
                hook.url, data=body, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False, stream=True
        ) as response:
            # One read of what has arrived: an endless or dripping reply can't hold a sender or fill its memory.
            status_code, start = response.status_code, response.raw.read1(RESPONSE_BYTES)
        excerpt = outbound.safe_excerpt(_as_text(start, response.encoding), RESPONSE_EXCERPT)
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except UserError as refused:
        error = str(refused)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as failure:
        error = type(failure).__name__  # the library's text names internals (pools, addresses) no one needs
    except Exception as failure:  # whatever a receiver's reply does, the attempt counts: never sent again unbounded
        logger.exception("webhook %s: delivery %s", hook, delivery.pk)
        error = type(failure).__name__
    now = timezone.now()
    attempts = delivery.attempts + 1
    entry = {"at": now.isoformat(), "status_code": status_code, "error": error,
             "duration_ms": round((time.monotonic() - began) * 1000), "response": excerpt}
    changes = {"attempts": attempts, "last_status_code": status_code, "last_error": error, "lease_expires_at": None,
               "attempt_log": [*delivery.attempt_log, entry]}
    if not error:
        outcome, changes["delivered_at"] = WebhookDelivery.Status.SUCCEEDED, now
    elif attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        outcome = WebhookDelivery.Status.FAILED
        logger.warning("webhook %s: delivery %s failed after %s attempts: %s", hook, delivery.pk, attempts, error)
    else:
        outcome, changes["next_attempt_at"] = WebhookDelivery.Status.PENDING, now + backoff(attempts)
    # Only while still ours: a claim that expired meanwhile belongs to whoever took it over.
    WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.DELIVERING).move_to(outcome, **changes)
    for name, value in {"status": outcome, **changes}.items():
        setattr(delivery, name, value)
    return delivery


def _as_text(start: bytes, charset: str | None) -> str:
    """A reply's first bytes as text, in the charset it names if Python knows that one (a receiver may name any)."""
    try:
        return start.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return start.decode("utf-8", errors="replace")


def send_test(webhook: Webhook) -> WebhookDelivery:
    """Send a test event to ``webhook`` now, whatever events it follows; the outcome is in its log."""
    delivery = WebhookDelivery.objects.create(
        webhook=webhook, event_type=EventType.TEST, payload={"message": "Test event from Stationkeeper"},
        status=WebhookDelivery.Status.DELIVERING, lease_expires_at=timezone.now() + timedelta(seconds=CLAIM_SECONDS))
    return send(WebhookDelivery.objects.select_related("webhook").get(pk=delivery.pk))


def retry_now(delivery: WebhookDelivery) -> None:
    """Send a failed or waiting delivery again at the next pass, with one more attempt allowed if it had run out."""
    if delivery.status == WebhookDelivery.Status.SUCCEEDED:
        raise UserError("already_delivered", _("Delivery %(delivery)s was already received."), {"delivery": delivery.pk})
    WebhookDelivery.objects.filter(pk=delivery.pk).move_to(
        WebhookDelivery.Status.PENDING, next_attempt_at=timezone.now(),
        attempts=min(delivery.attempts, settings.WEBHOOK_MAX_ATTEMPTS - 1))
