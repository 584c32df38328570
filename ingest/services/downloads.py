"""Downloading items into the library.

A download is claimed by a per-item advisory lock plus a compare-and-set on its status; network
and file work happens outside transactions, and an asset is created only when its file is
complete, checksummed and probed. A download that replaces an asset tells playout
(``ingest.signals.asset_replaced``), which puts the new one in its upcoming shows.
"""

import hashlib
import logging
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import get_valid_filename
from django.utils.translation import gettext_lazy as _

from ingest import feeds, fetch, media
from ingest.events import download_row
from ingest.models import Download, MediaAsset, PreviousDownload
from ingest.services.publishing import publication_queue
from ingest.signals import asset_replaced
from station import events, queues
from station.errors import UserError
from station.locks import session_lock
from station.models import EventType

logger = logging.getLogger(__name__)


def enqueue_download(download: Download) -> None:
    queue = queues.queue_for(queues.INGEST, studio_slug=download.source.studio.slug)
    queues.enqueue(queue, "ingest.tasks.download", download.pk, task_name=f"ingest.download:{download.pk}")


def downloads_requeue_stale(*, now: datetime) -> int:
    """Queue again downloads no worker touched lately (a lost job, a dead worker); a live one keeps its item lock."""
    stale = Download.objects.filter(status__in=[Download.Status.QUEUED, Download.Status.DOWNLOADING],
                                    updated_at__lt=now - timedelta(seconds=settings.INGEST_STALE_SECONDS))
    with transaction.atomic():
        picked = list(stale.select_for_update(skip_locked=True, of=("self",)).select_related("source__studio")[:500])
        Download.objects.filter(pk__in=[d.pk for d in picked]).update(updated_at=now)
        for download in picked:
            enqueue_download(download)
    return len(picked)


@transaction.atomic
def download_retry(*, download: Download) -> Download:
    """Try a failed download again (the admin's and API's "retry")."""
    retried = Download.objects.filter(pk=download.pk, status=Download.Status.FAILED).move_to(
        Download.Status.QUEUED, error_message="", bytes_done=0)
    download.refresh_from_db()
    if not retried:
        raise UserError("not_failed", _("%(download)s is %(status)s; only a failed download can be retried."),
                        {"download": str(download), "status": download.get_status_display()})
    _announce(download)
    enqueue_download(download)
    return download


def _item_lock_key(url: str) -> int:
    """A signed 64-bit advisory-lock key for an item's identity (its URL), the same in every source."""
    return int.from_bytes(hashlib.sha256(f"ingest-item:{url}".encode()).digest()[:8], "big", signed=True)


def item_lock(url: str):
    """Hold the item's lock for the whole download, or yield False at once if another worker has it."""
    return session_lock(_item_lock_key(url))


def partial_path(url: str) -> Path:
    """Where an item's bytes gather until complete: keyed by the item, so any worker resumes them."""
    return Path(settings.MEDIA_ROOT) / "ingest" / "partial" / f"{hashlib.sha256(url.encode()).hexdigest()[:32]}.part"


def _announce(download: Download) -> None:
    events.publish(studio_id=download.source.studio_id, type=EventType.DOWNLOAD, payload=download_row(download))


def download_run(*, download_id: int) -> Download | None:
    """Fetch one item into the library; None if another worker is fetching the same item right now."""
    download = Download.objects.select_related("source__studio").get(pk=download_id)
    with item_lock(download.url) as mine:
        if not mine:
            logger.info("%s: another worker is downloading %s; skipped", download, download.url)
            return None
        # Under the item lock no live worker has it: a row left `downloading` belongs to a dead one.
        claimed = Download.objects.filter(pk=download.pk).move_to(Download.Status.DOWNLOADING, attempts=F("attempts") + 1,
                                                                  error_message="")
        download.refresh_from_db()
        if not claimed:
            return download
        _announce(download)
        known = _asset_already_fetched(download)
        if known is not None:
            return _download_finish(download, asset=known, status=Download.Status.SKIPPED)
        partial = partial_path(download.url)
        try:
            fetched = fetch.fetch_to_file(download.url, partial, limits=fetch.Limits.from_settings(),
                                          on_progress=lambda done, total: _progress(download, done, total))
            probed = media.probe(fetched.path)
        except UserError as error:
            partial.unlink(missing_ok=True)
            return _download_fail(download, error)
        try:
            return _download_store(download, fetched, probed)
        except DatabaseError:
            raise  # the database is away: the row stays downloading, and is queued again once it is back
        except Exception as error:  # the library refuses the file (its folder, the disk): fail, not fetch it forever
            logger.exception("%s: the fetched file could not be stored", download)
            fetched.path.unlink(missing_ok=True)
            return _download_fail(download, UserError(
                "download_not_stored", _("The file was fetched but could not be stored in the library: %(error)s"),
                {"error": error}, inner=error))


def _asset_already_fetched(download: Download) -> MediaAsset | None:
    """The ready asset another source of the studio already fetched from this URL (not for a deliberate re-fetch)."""
    if download.asset_id:
        return None
    earlier = (Download.objects.filter(url=download.url, source__studio_id=download.source.studio_id,
                                       status=Download.Status.COMPLETED, asset__status=MediaAsset.Status.READY)
               .exclude(pk=download.pk).select_related("asset").first())
    return earlier.asset if earlier else None


def _progress(download: Download, done: int, total: int | None) -> None:
    download.bytes_done, download.bytes_total = done, total
    Download.objects.filter(pk=download.pk).update(bytes_done=done, bytes_total=total, updated_at=timezone.now())
    _announce(download)


def _download_fail(download: Download, error: UserError) -> Download:
    download.move_to(Download.Status.FAILED, error_message=str(error))
    _announce(download)
    logger.info("%s failed: %s", download, error)
    return download


def _download_store(download: Download, fetched: fetch.Fetched, probed: media.Probe) -> Download:
    """Move the complete file into the library and make it a ready asset (or reuse an identical one)."""
    studio = download.source.studio
    same = MediaAsset.objects.filter(studio=studio, checksum=fetched.sha256, status=MediaAsset.Status.READY).first()
    if same is not None:
        fetched.path.unlink(missing_ok=True)
        return _download_finish(download, asset=same, status=Download.Status.COMPLETED)
    now = timezone.now()
    name = _library_name(download.url)
    # Named by ids, which never change: a studio's slug can be renamed while its downloads run.
    relative = Path("library") / "ingest" / f"studio-{studio.pk}" / f"{now:%Y/%m}" / f"{download.pk}-{fetched.sha256[:12]}-{name}"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(fetched.path, target)
    try:
        with transaction.atomic():
            asset = MediaAsset.objects.create(
                studio=studio, title=download.title or name, file=str(relative), origin=MediaAsset.Origin.INGEST,
                status=MediaAsset.Status.READY, checksum=fetched.sha256, size_bytes=fetched.size,
                duration_seconds=probed.duration_seconds, format_name=probed.format_name,
            )
            publication_queue(asset=asset, quiet=True)
            return _download_finish(download, asset=asset, status=Download.Status.COMPLETED)
    except Exception:
        target.unlink(missing_ok=True)  # no file in the library without its asset
        raise


def _library_name(url: str) -> str:
    """The end of the item's URL as a file name, or "media" where nothing of it can name a file (an emoji, dots)."""
    try:
        return get_valid_filename(feeds.title_from_url(url))[-120:]
    except SuspiciousFileOperation:
        return "media"


@transaction.atomic
def _download_finish(download: Download, *, asset: MediaAsset, status: str) -> Download:
    previous_asset_id = download.asset_id
    message = "" if status == Download.Status.COMPLETED else str(_("Already in the library as %(asset)s.") % {"asset": asset})
    download.move_to(status, asset=asset, error_message=message, bytes_done=asset.size_bytes or download.bytes_done)
    if download.source.remember_downloads:
        PreviousDownload.objects.get_or_create(source=download.source, item_key=download.item_key)
    if previous_asset_id and previous_asset_id != asset.pk:
        asset_replaced.send(sender=MediaAsset, old_id=previous_asset_id, new=asset, now=timezone.now())
    _announce(download)
    return download
