"""Media files already on disk becoming the library's assets."""

import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction

from ingest import media
from ingest.models import MediaAsset
from station.models import Studio

logger = logging.getLogger(__name__)


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
        if asset.checksum != facts["checksum"]:  # other content: its loudness is measured again (ingest.services.loudness)
            facts.update(loudness_lufs=None, loudness_range_lu=None, true_peak_dbtp=None, loudness_measured_at=None,
                         loudness_lease_until=None)
        for name, value in facts.items():
            setattr(asset, name, value)
        asset.save(update_fields=[*facts, "updated_at"])
        if asset.status != MediaAsset.Status.READY:
            asset.move_to(MediaAsset.Status.READY)
    return asset
