"""Media uploaded by people (admin, API) stored into the library."""

import re
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from ingest.models import MediaAsset
from ingest.services import asset_register_file
from station.errors import UserError
from station.models import Studio

_PLAIN_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")


def asset_upload(*, studio: Studio, upload: UploadedFile, title: str = "") -> MediaAsset:
    """Store an uploaded file under MEDIA_ROOT and register it as a ready asset; a file ffprobe can't read is not kept."""
    directory = Path(settings.MEDIA_ROOT) / "library" / "uploads" / studio.slug
    directory.mkdir(parents=True, exist_ok=True)
    original = Path(upload.name or "upload")
    # The stored name is ours (never a path or name the client chose); the suffix helps players guess the format.
    suffix = original.suffix if _PLAIN_SUFFIX.fullmatch(original.suffix) else ""
    path = directory / f"{uuid.uuid4().hex}{suffix}"
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    try:
        return asset_register_file(studio=studio, path=path, title=title or original.stem or path.stem,
                                   origin=MediaAsset.Origin.UPLOAD)
    except UserError:
        path.unlink(missing_ok=True)
        raise
