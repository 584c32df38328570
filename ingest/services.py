"""Bringing media into the library: polling sources, downloading items, publishing assets.

Every once-only step is a claim: due sources and due publications are taken with
``SELECT … FOR UPDATE SKIP LOCKED``, a download by a per-item advisory lock plus a
compare-and-set on its status. Network and file work happens outside transactions;
an asset is created only when its file is complete, checksummed and probed.
"""

import contextlib
import hashlib
import json
import logging
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import get_valid_filename
from django.utils.translation import gettext_lazy as _

from ingest import feeds, fetch, media
from ingest.models import Download, IngestSource, MediaAsset, PreviousDownload, Publication
from station import dashboard, events, queues
from station.errors import UserError
from station.locks import rundown_lock, session_lock, timeline_lock
from station.models import Studio
from station.services import alert_raise

logger = logging.getLogger(__name__)
POLL_BATCH = 10  # sources one poller claims at a time; other pollers take the rest
PUBLISH_BACKOFF_CAP = timedelta(hours=6)


@transaction.atomic
def asset_register_file(*, studio: Studio, path: Path, title: str, origin: str = MediaAsset.Origin.UPLOAD) -> MediaAsset:
    """Probe a file already under MEDIA_ROOT and record it as a ready asset (once per file)."""
    probed = media.probe(path)
    relative = str(path.resolve().relative_to(Path(settings.MEDIA_ROOT).resolve()))
    facts = {
        "title": title,
        "origin": origin,
        "checksum": media.sha256_file(path),
        "size_bytes": path.stat().st_size,
        "duration_seconds": probed.duration_seconds,
        "format_name": probed.format_name,
        "error_message": "",
    }
    asset, created = MediaAsset.objects.get_or_create(studio=studio, file=relative,
                                                      defaults={**facts, "status": MediaAsset.Status.READY})
    if not created:  # probed again: its facts are the file's now
        for name, value in facts.items():
            setattr(asset, name, value)
        asset.save(update_fields=[*facts, "updated_at"])
        if asset.status != MediaAsset.Status.READY:
            asset.move_to(MediaAsset.Status.READY)
    return asset


# --- Polling -------------------------------------------------------------------------------------


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
        items = feeds.list_items(source)
    except UserError as error:
        IngestSource.objects.filter(pk=source.pk).update(last_error=str(error), updated_at=timezone.now())
        logger.info("poll of %s failed: %s", source, error)
        return []
    queued = downloads_queue_items(source=source, items=items)
    IngestSource.objects.filter(pk=source.pk).exclude(last_error="").update(last_error="", updated_at=timezone.now())
    return queued


def sources_poll_due(*, now: datetime, studios: list[int] | None = None) -> int:
    """Poll every due source (in batches); return how many downloads were queued."""
    queued = 0
    while claimed := sources_claim_due(now=now, studios=studios):
        queued += sum(len(source_poll(source=source)) for source in claimed)
    return queued


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
        _enqueue_download(download)
    return queued


def _enqueue_download(download: Download) -> None:
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
            _enqueue_download(download)
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
    _enqueue_download(download)
    return download


# --- Downloading ---------------------------------------------------------------------------------


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
    events.publish(studio_id=download.source.studio_id, type="ingest.download", payload=dashboard.download_row(download))


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
        return _download_store(download, fetched, probed)


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
    name = get_valid_filename(feeds.title_from_url(download.url))[-120:] or "media"
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


@transaction.atomic
def _download_finish(download: Download, *, asset: MediaAsset, status: str) -> Download:
    previous_asset_id = download.asset_id
    message = "" if status == Download.Status.COMPLETED else str(_("Already in the library as %(asset)s.") % {"asset": asset})
    download.move_to(status, asset=asset, error_message=message, bytes_done=asset.size_bytes or download.bytes_done)
    if download.source.remember_downloads:
        PreviousDownload.objects.get_or_create(source=download.source, item_key=download.item_key)
    if previous_asset_id and previous_asset_id != asset.pk:
        asset_replace_in_upcoming_shows(old_id=previous_asset_id, new=asset, now=timezone.now())
    _announce(download)
    return download


# --- Replacing media in upcoming shows -----------------------------------------------------------


@transaction.atomic
def asset_replace_in_upcoming_shows(*, old_id: int, new: MediaAsset, now: datetime) -> int:
    """Put ``new`` where playlists had the old asset, under the rundown locks, then the timeline locks.

    The timeline's future items change in the same transaction, so each channel's
    agent is notified at commit and plays the new media; it re-times the items if
    the length changed. Returns the playlist items changed.
    """
    from playout.models import PlaylistItem, ScheduledItem, ShowInstance

    items = PlaylistItem.objects.filter(asset_id=old_id)
    playlists = set(items.values_list("playlist_id", flat=True))
    if not playlists:
        return 0
    upcoming = ShowInstance.objects.filter(cancelled=False, end_at__gt=now).filter(
        Q(playlist_id__in=playlists) | Q(playlist__isnull=True, show__playlist_id__in=playlists))
    shows = sorted(set(upcoming.values_list("show_id", flat=True)))
    channels = sorted(set(upcoming.values_list("channel_id", flat=True)))
    with contextlib.ExitStack() as held:
        # Rundown before timeline, ids ascending: every process takes them in this one order.
        for show_id in shows:
            held.enter_context(rundown_lock(show_id))
        for channel_id in channels:
            held.enter_context(timeline_lock(channel_id))
        changed = items.update(asset=new)
        ScheduledItem.objects.filter(asset_id=old_id, channel_id__in=channels, start_at__gte=now).update(
            asset=new, title=new.title[:300])
    logger.info("asset %s replaced by %s in %d playlist items (%d shows)", old_id, new.pk, changed, len(shows))
    return changed


# --- Publishing ----------------------------------------------------------------------------------


def publication_queue(*, asset: MediaAsset, quiet: bool = False) -> Publication | None:
    """Publish ``asset`` to the archive from the next tick on (again, if it was published or gave up)."""
    if not settings.PUBLISH_URL:
        if quiet:
            return None
        raise UserError("publishing_off", _("No archive is configured (PUBLISH_URL is empty)."))
    if asset.status != MediaAsset.Status.READY:
        raise UserError("asset_not_ready", _("%(asset)s is %(status)s; only ready media can be published."),
                        {"asset": asset.title, "status": asset.get_status_display()})
    fresh = {"attempts": 0, "next_attempt_at": timezone.now(), "last_error": ""}
    publication, created = Publication.objects.get_or_create(asset=asset, defaults=fresh)
    if not created:
        publication.move_to(Publication.Status.PENDING, **fresh)
    return publication


def _publish_backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=settings.PUBLISH_BACKOFF_SECONDS * 2 ** (attempts - 1)), PUBLISH_BACKOFF_CAP)


def publications_claim_due(*, now: datetime, limit: int) -> list[Publication]:
    """Take due publications: each attempt is counted and the next one set before sending, so a crash retries later."""
    with transaction.atomic():
        due = list(Publication.objects.filter(status=Publication.Status.PENDING, next_attempt_at__lte=now)
                   .select_for_update(skip_locked=True).order_by("next_attempt_at", "pk")[:limit])
        for publication in due:
            publication.attempts += 1
            publication.next_attempt_at = now + max(_publish_backoff(publication.attempts),
                                                    timedelta(seconds=settings.PUBLISH_TIMEOUT_SECONDS))
            publication.save(update_fields=["attempts", "next_attempt_at", "updated_at"])
    return due


def publications_publish_due(*, now: datetime) -> int:
    """Send at most PUBLISH_BATCH due publications; return how many the archive accepted."""
    accepted = 0
    for publication in publications_claim_due(now=now, limit=settings.PUBLISH_BATCH):
        accepted += publication_send(publication=publication)
    return accepted


def publication_send(*, publication: Publication) -> bool:
    """POST the asset's file and metadata to PUBLISH_URL; record success, the next attempt, or giving up."""
    asset = MediaAsset.objects.select_related("studio").get(pk=publication.asset_id)
    try:
        _post_to_archive(asset)
    except UserError as error:
        now = timezone.now()
        if publication.attempts >= settings.PUBLISH_MAX_ATTEMPTS:
            Publication.objects.filter(pk=publication.pk).move_to(Publication.Status.FAILED, last_error=str(error),
                                                                  next_attempt_at=None, updated_at=now)
            alert_raise(studio=asset.studio_id, code="publish_failed", subject=asset.title,
                        message=_("%(asset)s was not published after %(attempts)d attempts: %(reason)s")
                        % {"asset": asset.title, "attempts": publication.attempts, "reason": error})
        else:
            Publication.objects.filter(pk=publication.pk).update(
                last_error=str(error), next_attempt_at=now + _publish_backoff(publication.attempts), updated_at=now)
        return False
    Publication.objects.filter(pk=publication.pk).move_to(Publication.Status.PUBLISHED, published_at=timezone.now(),
                                                          next_attempt_at=None, last_error="")
    return True


def _post_to_archive(asset: MediaAsset) -> None:
    metadata = {
        "id": asset.pk, "studio": asset.studio.slug, "title": asset.title, "origin": asset.origin,
        "sha256": asset.checksum, "size_bytes": asset.size_bytes, "duration_seconds": asset.duration_seconds,
        "format": asset.format_name, "created_at": asset.created_at.isoformat(),
    }
    path = Path(settings.MEDIA_ROOT) / asset.file.name
    try:
        with path.open("rb") as handle:
            response = requests.post(
                settings.PUBLISH_URL,
                data={"metadata": json.dumps(metadata)},
                files={"file": (path.name, handle, "application/octet-stream")},
                # the same key on every attempt: an archive that got it before (lost answer) keeps one copy
                headers={"Idempotency-Key": f"studio-{asset.studio_id}-{asset.pk}-{asset.checksum}", "User-Agent": fetch.USER_AGENT},
                timeout=(settings.INGEST_CONNECT_TIMEOUT_SECONDS, settings.PUBLISH_TIMEOUT_SECONDS),
            )
    except OSError as error:  # requests' errors are OSErrors too, as is a missing file
        raise UserError("publish_unreachable", _("The archive could not be reached: %(reason)s"),
                        {"reason": type(error).__name__}, inner=error) from error
    if response.status_code >= 300:
        raise UserError("publish_rejected", _("The archive answered HTTP %(status)d %(reason)s."),
                        {"status": response.status_code, "reason": response.reason})


# --- The ingest tick -----------------------------------------------------------------------------


def ingest_housekeeping(*, now: datetime) -> None:
    """One pass of the ingest loop: poll due sources, requeue lost downloads, publish what is due."""
    sources_poll_due(now=now)
    downloads_requeue_stale(now=now)
    publications_publish_due(now=now)
