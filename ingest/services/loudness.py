"""Assets' loudness (EBU R128): measured once per file by a worker of the ingest queue, outside any transaction.

Every ready asset, uploaded, downloaded or recorded, is measured the same way: the ingest tick leases
the ones not measured yet (LOUDNESS_LEASE, so a second replica's tick leaves them be), a few at a
time, and queues a measurement each; a worker decodes the file with ffmpeg, at a lower CPU
priority than the downloads', and writes the figures with one compare-and-set. A worker that dies
leaves its lease to run out, and the next tick queues the asset again. A file that can't be measured is marked measured with no figures, with its reason logged,
so it is not tried at every tick. A node's cacher measures an item coming to air that no job has
measured yet (playout.cacher), and stores it the same way.
"""

import logging
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ingest import media
from ingest.models import Download, MediaAsset
from station import queues
from station.errors import UserError

logger = logging.getLogger(__name__)

LOUDNESS_LEASE = timedelta(minutes=30)  # longer than a measurement of the longest file takes (2 GB at 50x)
DOWNLOADS_QUIET = timedelta(seconds=30)  # measurements wait this long after the last download moved: bursts come in waves


def assets_queue_loudness(*, now: datetime) -> int:
    """Lease and queue measurements for ready assets not measured yet, INGEST_LOUDNESS_PARALLEL at a time in
    the whole station, and none while a download is queued or running or was DOWNLOADS_QUIET ago: a
    library's backlog (a first start, a large import) never takes ingest workers from the downloads.
    What comes to air meanwhile is measured by the node's cacher."""
    busy = Q(status__in=[Download.Status.QUEUED, Download.Status.DOWNLOADING]) | Q(updated_at__gte=now - DOWNLOADS_QUIET)
    if Download.objects.filter(busy).exists():
        return 0  # downloads first: a measurement holds an ingest worker for seconds
    unmeasured = MediaAsset.objects.filter(status=MediaAsset.Status.READY, loudness_measured_at__isnull=True)
    with transaction.atomic():
        room = settings.INGEST_LOUDNESS_PARALLEL - unmeasured.filter(loudness_lease_until__gte=now).count()
        picked = list(unmeasured.filter(Q(loudness_lease_until__isnull=True) | Q(loudness_lease_until__lt=now))
                      .select_for_update(skip_locked=True, of=("self",)).select_related("studio").order_by("pk")[:max(room, 0)])
        MediaAsset.objects.filter(pk__in=[asset.pk for asset in picked]).update(loudness_lease_until=now + LOUDNESS_LEASE)
        for asset in picked:
            queues.enqueue(queues.queue_for(queues.INGEST, studio_slug=asset.studio.slug), "ingest.tasks.measure_loudness",
                           asset.pk, task_name=f"ingest.loudness:{asset.pk}")
    return len(picked)


def asset_measure_loudness(*, asset_id: int) -> MediaAsset | None:
    """Measure a ready asset's file and store the figures; None if it is measured already or no longer ready."""
    asset = MediaAsset.objects.filter(pk=asset_id, status=MediaAsset.Status.READY, loudness_measured_at__isnull=True).first()
    if asset is None:
        return None
    try:
        measured = media.measure_loudness(Path(asset.file.path), duration_seconds=asset.duration_seconds)
    except UserError as error:
        logger.warning("asset %s: %s", asset.pk, error)
        measured = None
    asset_store_loudness(asset_id=asset.pk, checksum=asset.checksum, measured=measured)
    asset.refresh_from_db()
    return asset


def asset_store_loudness(*, asset_id: int, checksum: str, measured: media.Loudness | None) -> bool:
    """Store a measurement of the asset's file (the one with ``checksum``; None: it could not be measured), unless
    one is stored already: whoever measures first (an ingest job, a node's cacher before air), once per file."""
    figures = {"loudness_lufs": None, "loudness_range_lu": None, "true_peak_dbtp": None} if measured is None else {
        "loudness_lufs": measured.integrated_lufs, "loudness_range_lu": measured.range_lu,
        "true_peak_dbtp": measured.true_peak_dbtp}
    now = timezone.now()
    # The same file still: one probed again meanwhile (asset_register_file) is measured again.
    return bool(MediaAsset.objects.filter(pk=asset_id, loudness_measured_at__isnull=True, checksum=checksum).update(
        **figures, loudness_measured_at=now, loudness_lease_until=None, updated_at=now))
