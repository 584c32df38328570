"""The ingest tick's pass."""

from datetime import datetime

from ingest.services.downloads import downloads_requeue_stale
from ingest.services.loudness import assets_queue_loudness
from ingest.services.polling import sources_poll_due
from ingest.services.publishing import publications_publish_due


def ingest_housekeeping(*, now: datetime) -> None:
    """One pass of the ingest loop: poll due sources, requeue lost downloads, publish what is due, queue the
    loudness measurements of new assets."""
    sources_poll_due(now=now)
    downloads_requeue_stale(now=now)
    publications_publish_due(now=now)
    assets_queue_loudness(now=now)
