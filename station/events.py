"""The event bus: state changes people watch, published after the transaction commits.

Dashboards subscribe per studio. Until the dashboards' consumers are wired in,
events go to the log and to any sink registered with ``subscribe`` (tests use
one to assert what was published).
"""

import logging
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)

Event = dict
_sinks: list[Callable[[Event], None]] = []


def subscribe(sink: Callable[[Event], None]) -> Callable[[], None]:
    """Register a sink; return a function that removes it."""
    _sinks.append(sink)
    return lambda: _sinks.remove(sink)


def publish(*, studio_id: int, type: str, payload: dict) -> None:
    """Send ``type`` (dotted, e.g. ``recorders.schedule``) to the studio once the transaction commits."""
    event = {"studio": studio_id, "type": type, "payload": payload}
    transaction.on_commit(lambda: _deliver(event))


def _deliver(event: Event) -> None:
    logger.debug("event %s for studio %s", event["type"], event["studio"])
    for sink in list(_sinks):
        try:
            sink(event)
        except Exception:  # a broken sink must never undo or block the change it reports
            logger.exception("event sink failed for %s", event["type"])
