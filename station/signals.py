"""Edits that move what a dashboard's timeline shows, whichever way they are made (admin, API, jobs).

Saves and deletes of the models apps register here (``announce_timeline_edits``, from their
AppConfig.ready) send the studio's new timeline (``station.timeline``) shortly after their
transaction commits. A background thread per process builds it with the composition root's builder
(``announcer.build``, set by station.apps, since the timeline reads every app) and publishes it, off
the request that made the edit, once per studio for a burst of edits (COALESCE_SECONDS). Status
changes made by conditional UPDATE publish their own events.
"""

import logging
import os
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections, models, transaction
from django.db.models.signals import post_delete, post_save

from station import events
from station.models import EventType, Studio

logger = logging.getLogger(__name__)
COALESCE_SECONDS = 0.25


class TimelineAnnouncer:
    """Studios whose timeline changed, published by one thread of this process."""

    def __init__(self):
        self.pending: set[int] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.thread: threading.Thread | None = None
        self.pid: int | None = None
        self.build: Callable[[int], dict] | None = None  # a studio's timeline, by its id

    def add(self, studio_id: int) -> None:
        with self.lock:
            self.pending.add(studio_id)
            self.idle.clear()
            if self.thread is None or self.pid != os.getpid() or not self.thread.is_alive():
                self.thread, self.pid = threading.Thread(target=self._run, name="timeline events", daemon=True), os.getpid()
                self.thread.start()
        self.wake.set()

    def _run(self) -> None:
        while True:
            self.wake.wait()
            time.sleep(COALESCE_SECONDS)  # the rest of a burst (an inline formset, a bulk import) joins in
            self.wake.clear()
            with self.lock:
                studios, self.pending = self.pending, set()
            for studio_id in studios:
                try:
                    self._publish(studio_id)
                except Exception:  # the next edit or the dashboard's own refresh brings it
                    logger.exception("timeline of studio %s not published", studio_id)
            close_old_connections()
            with self.lock:
                if not self.pending:
                    self.idle.set()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Whether every timeline due has gone out within ``timeout`` (tests; a process exiting)."""
        return self.idle.wait(timeout)

    def _publish(self, studio_id: int) -> None:
        try:
            payload = self.build(studio_id)
        except Studio.DoesNotExist:
            return  # the studio itself went
        with transaction.atomic():
            events.publish(studio_id=studio_id, type=EventType.TIMELINE, payload=payload)


announcer = TimelineAnnouncer()
_owners: dict[type[models.Model], str | None] = {}


def announce_timeline_edits(model: type[models.Model], *, owner: str | None = None) -> None:
    """Publish the timeline after each save or delete of ``model``, whose studio is its own or its ``owner``'s."""
    _owners[model] = owner
    post_save.connect(timeline_edited, sender=model, dispatch_uid=f"timeline:{model._meta.label}")
    post_delete.connect(timeline_edited, sender=model, dispatch_uid=f"timeline:{model._meta.label}")


def _studio_of(sender, instance) -> int | None:
    if _owners[sender] is None:
        return instance.studio_id
    owner_field = sender._meta.get_field(_owners[sender])
    if owner_field.is_cached(instance):  # as a form or a serializer leaves it: no look-up
        owner = owner_field.get_cached_value(instance)
        return owner.studio_id if owner is not None else None
    owners = owner_field.related_model.objects.order_by()
    return owners.filter(pk=getattr(instance, owner_field.attname)).values_list("studio_id", flat=True).first()


def timeline_edited(sender, instance, **kwargs):
    studio_id = _studio_of(sender, instance)
    if studio_id is not None:
        transaction.on_commit(lambda: announcer.add(studio_id))
