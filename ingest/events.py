"""Ingest's event payloads: the rows dashboards and webhooks get (``ingest.download``)."""

from ingest.models import Download


def download_row(download: Download) -> dict:
    return {"id": download.pk, "source": download.source_id, "title": download.title or download.url,
            "status": download.status, "bytes_done": download.bytes_done, "bytes_total": download.bytes_total,
            "error": download.error_message, "asset": download.asset_id}
