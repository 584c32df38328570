"""Bringing media into the library."""

from pathlib import Path

from django.conf import settings
from django.db import transaction

from ingest import media
from ingest.models import MediaAsset
from station.models import Studio


@transaction.atomic
def asset_register_file(*, studio: Studio, path: Path, title: str, origin: str = MediaAsset.Origin.UPLOAD) -> MediaAsset:
    """Probe a file already under MEDIA_ROOT and record it as a ready asset (once per file)."""
    probed = media.probe(path)
    relative = str(path.resolve().relative_to(Path(settings.MEDIA_ROOT).resolve()))
    asset, _created = MediaAsset.objects.update_or_create(
        studio=studio,
        file=relative,
        defaults={
            "title": title,
            "origin": origin,
            "status": MediaAsset.Status.READY,
            "checksum": media.sha256_file(path),
            "size_bytes": path.stat().st_size,
            "duration_seconds": probed.duration_seconds,
            "format_name": probed.format_name,
            "error_message": "",
        },
    )
    return asset
