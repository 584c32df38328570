"""Bringing media into the library, one module per concern.

- ``assets``: files already on disk becoming assets;
- ``loudness``: each ready asset's loudness, measured once;
- ``polling``: sources claimed when due, their new items queued;
- ``downloads``: items fetched into the library, once each;
- ``publishing``: assets sent to the external archive, with retries;
- ``tick``: the ingest tick's pass.
"""

from ingest.services.assets import asset_register_file
from ingest.services.downloads import download_retry, download_run, downloads_requeue_stale
from ingest.services.loudness import asset_measure_loudness, asset_store_loudness, assets_queue_loudness
from ingest.services.tick import ingest_housekeeping
from ingest.services.polling import source_poll, source_poll_soon, sources_claim_due, sources_poll_due
from ingest.services.publishing import publication_queue, publications_publish_due

__all__ = [
    "asset_measure_loudness", "asset_register_file", "asset_store_loudness", "assets_queue_loudness",
    "download_retry", "download_run", "downloads_requeue_stale", "ingest_housekeeping", "publication_queue", "publications_publish_due", "source_poll", "source_poll_soon", "sources_claim_due",
    "sources_poll_due",
]
