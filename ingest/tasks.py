"""django-q2 entry points for ingest (the `ingest` queue): thin callers of services."""

from django.conf import settings
from django.utils import timezone

from ingest import services
from station.periodic import run_periodic_job


def tick(**options) -> bool:
    """Poll due sources, requeue lost downloads and publish, every INGEST_TICK_SECONDS, on one replica at a time."""
    return run_periodic_job(name="ingest.tick", interval=settings.INGEST_TICK_SECONDS,
                            step=lambda: services.ingest_housekeeping(now=timezone.now()), **options)


def poll(studio_id: int) -> int:
    """Poll the studio's sources due now (beside the tick: each source goes to one poller)."""
    return services.sources_poll_due(now=timezone.now(), studios=[studio_id])


def download(download_id: int) -> str:
    """Fetch one item; skipped at once if another worker holds the item."""
    result = services.download_run(download_id=download_id)
    return "busy" if result is None else result.status


def measure_loudness(asset_id: int) -> str:
    """Measure one asset's loudness (queued by the tick, once per lease)."""
    asset = services.asset_measure_loudness(asset_id=asset_id)
    return "skipped" if asset is None else f"{asset.loudness_lufs} LUFS"
