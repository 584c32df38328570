"""Media uploaded by people (admin, API) stored into the library."""

import re
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from ingest.models import MediaAsset
from ingest.services import asset_register_file
from station.api.parsers import BodyTooLarge
from station.errors import UserError
from station.models import Studio

_PLAIN_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")


def asset_upload(*, studio: Studio, upload: UploadedFile, title: str = "") -> MediaAsset:
    """Store an uploaded file under MEDIA_ROOT and register it as a ready asset; a file ffprobe can't read is not kept."""
    directory = Path(settings.MEDIA_ROOT) / "library" / "uploads" / f"studio-{studio.pk}"  # ids never change
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


class UploadLimitHandler(FileUploadHandler):
    """Refuse a multipart body over UPLOAD_MAX_BYTES (413 in the API) before more of it is read or stored.

    First in FILE_UPLOAD_HANDLERS: a body announced larger is refused before its first byte is read;
    one that turns out larger (a length not announced, or not told the truth) once that much has
    arrived, before the handlers after it write another chunk to a temporary file.
    """

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.max_bytes, self.received = settings.UPLOAD_MAX_BYTES, 0
        if content_length > self.max_bytes:
            raise BodyTooLarge(self.max_bytes)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            raise BodyTooLarge(self.max_bytes)
        return raw_data  # on to the handler that stores it

    def file_complete(self, file_size):
        return None  # the next handler makes the file
