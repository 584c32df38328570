"""Edits that move what a dashboard's timeline shows, whichever way they are made (admin, API, jobs).

Shows, recordings, channels and recorders saved or deleted send the studio's new timeline
(``station.timeline``) shortly after their transaction commits. A background thread per process
builds and publishes it, off the request that made the edit, once per studio for a burst of edits
(COALESCE_SECONDS). Status changes made by conditional UPDATE publish their own events.
"""

import logging
import os
import threading
import time

from django.db import close_old_connections, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from playout.models import Channel, ShowInstance
from recorders.models import Recorder, RecorderSchedule
from station import dashboard, events
from station.models import Studio

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
                    _publish_timeline(studio_id)
                except Exception:  # the next edit or the dashboard's own refresh brings it
                    logger.exception("timeline of studio %s not published", studio_id)
            close_old_connections()
            with self.lock:
                if not self.pending:
                    self.idle.set()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Whether every timeline due has gone out within ``timeout`` (tests; a process exiting)."""
        return self.idle.wait(timeout)


def _publish_timeline(studio_id: int) -> None:
    try:
        payload = dashboard.studio_timeline(studio_id)
    except Studio.DoesNotExist:
        return  # the studio itself went
    with transaction.atomic():
        events.publish(studio_id=studio_id, type="station.timeline", payload=payload)


announcer = TimelineAnnouncer()


def _studio_of(sender, instance) -> int | None:
    if sender is Channel or sender is Recorder:
        return instance.studio_id
    owner_field = ShowInstance.channel.field if sender is ShowInstance else RecorderSchedule.recorder.field
    if owner_field.is_cached(instance):  # as a form or a serializer leaves it: no look-up
        owner = owner_field.get_cached_value(instance)
        return owner.studio_id if owner is not None else None
    owners = owner_field.related_model.objects.order_by()
    return owners.filter(pk=getattr(instance, owner_field.attname)).values_list("studio_id", flat=True).first()


@receiver(post_save, sender=ShowInstance)
@receiver(post_save, sender=RecorderSchedule)
@receiver(post_save, sender=Channel)
@receiver(post_save, sender=Recorder)
@receiver(post_delete, sender=ShowInstance)
@receiver(post_delete, sender=RecorderSchedule)
@receiver(post_delete, sender=Channel)
@receiver(post_delete, sender=Recorder)
def timeline_edited(sender, instance, **kwargs):
    studio_id = _studio_of(sender, instance)
    if studio_id is not None:
        transaction.on_commit(lambda: announcer.add(studio_id))
