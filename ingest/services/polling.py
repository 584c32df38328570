"""Polling sources: due sources are claimed with SKIP LOCKED, and each new item is queued as a download."""

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ingest import feeds
from ingest.models import Download, IngestSource, PreviousDownload
from ingest.services.downloads import enqueue_download
from station import queues
from station.errors import UserError

logger = logging.getLogger(__name__)
POLL_BATCH = 10  # sources one poller claims at a time; other pollers take the rest


def sources_claim_due(*, now: datetime, studios: list[int] | None = None, limit: int = POLL_BATCH) -> list[IngestSource]:
    """Take due sources for this poller: their next poll moves on, so no other poller takes them too."""
    due = IngestSource.objects.filter(enabled=True).filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
    if studios is not None:
        due = due.filter(studio_id__in=studios)
    with transaction.atomic():
        claimed = list(due.select_for_update(skip_locked=True).order_by(F("next_poll_at").asc(nulls_first=True), "pk")[:limit])
        for source in claimed:
            source.last_polled_at = now
            source.next_poll_at = now + timedelta(minutes=source.poll_interval_minutes)
            source.save(update_fields=["last_polled_at", "next_poll_at", "updated_at"])
    return claimed


def source_poll(*, source: IngestSource) -> list[Download]:
    """List the source's items and queue a download for each new one; a source that can't be read keeps its reason."""
    try:
        listing = feeds.list_items(source)
    except UserError as error:
        IngestSource.objects.filter(pk=source.pk).update(last_error=str(error), updated_at=timezone.now())
        logger.info("poll of %s failed: %s", source, error)
        return []
    queued = downloads_queue_items(source=source, items=listing.items)
    IngestSource.objects.filter(pk=source.pk).exclude(last_error=listing.left_out).update(
        last_error=listing.left_out, updated_at=timezone.now())
    return queued


def sources_poll_due(*, now: datetime, studios: list[int] | None = None) -> int:
    """Poll every due source (in batches); return how many downloads were queued."""
    queued = 0
    while claimed := sources_claim_due(now=now, studios=studios):
        queued += sum(len(_source_poll_contained(source)) for source in claimed)
    return queued


def _source_poll_contained(source: IngestSource) -> list[Download]:
    try:
        return source_poll(source=source)
    except (OperationalError, InterfaceError):
        raise  # the database is away: the pass stops, and runs again once it is back
    except Exception as error:  # one source's data the rules missed: it says why, and the others are polled
        logger.exception("poll of %s failed", source)
        reason = _("Its items could not be queued: %(reason)s") % {"reason": str(error).splitlines()[0] if str(error)
                                                                             else type(error).__name__}
        IngestSource.objects.filter(pk=source.pk).update(last_error=str(reason)[:2000], updated_at=timezone.now())
        return []


def source_poll_soon(*, source: IngestSource) -> IngestSource:
    """Make a source due now and wake a poller (the admin's and API's "poll now")."""
    if not source.enabled:
        raise UserError("source_disabled", _("%(source)s is disabled; enable it to poll it."), {"source": source.name})
    with transaction.atomic():
        IngestSource.objects.filter(pk=source.pk).update(next_poll_at=timezone.now(), updated_at=timezone.now())
        queues.enqueue(queues.queue_for(queues.INGEST, studio_slug=source.studio.slug), "ingest.tasks.poll",
                       source.studio_id, task_name=f"ingest.poll:{source.pk}")
    source.refresh_from_db()
    return source


@transaction.atomic
def downloads_queue_items(*, source: IngestSource, items: list[feeds.Item]) -> list[Download]:
    """Queue a download per item not seen before; a source that doesn't remember fetches finished items again."""
    keys = [item.key for item in items]
    remembered = set()
    if source.remember_downloads:
        remembered = set(PreviousDownload.objects.filter(source=source, item_key__in=keys).values_list("item_key", flat=True))
    existing = {d.item_key: d for d in Download.objects.filter(source=source, item_key__in=keys)}
    fresh = [Download(source=source, item_key=item.key, url=item.url, title=item.title)
             for item in items if item.key not in remembered and item.key not in existing]
    try:
        with transaction.atomic():
            created = Download.objects.bulk_create(fresh)
    except IntegrityError:  # another poll of this source ("poll now") queued them at the same moment
        created = []
    again = []
    if not source.remember_downloads:
        finished = [d.pk for d in existing.values() if d.status in (Download.Status.COMPLETED, Download.Status.SKIPPED)]
        again = list(Download.objects.filter(pk__in=finished, status__in=[Download.Status.COMPLETED, Download.Status.SKIPPED])
                     .select_related("source__studio"))
        Download.objects.filter(pk__in=[d.pk for d in again]).move_to(Download.Status.QUEUED, bytes_done=0, error_message="")
    queued = created + again
    for download in queued:
        enqueue_download(download)
    return queued
