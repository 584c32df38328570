"""The ingest tick's pass."""

from datetime import datetime

from ingest.services.downloads import downloads_requeue_stale
from ingest.services.polling import sources_poll_due
from ingest.services.publishing import publications_publish_due


def ingest_housekeeping(*, now: datetime) -> None:
    """One pass of the ingest loop: poll due sources, requeue lost downloads, publish what is due."""
    sources_poll_due(now=now)
    downloads_requeue_stale(now=now)
    publications_publish_due(now=now)
