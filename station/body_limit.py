"""A request body over its limit is refused (413) as it arrives, before Daphne has stored it.

The limit is UPLOAD_MAX_BYTES for a multipart body (files: uploads in the API and the admin) and
DATA_UPLOAD_MAX_MEMORY_SIZE for any other (JSON, forms), which Django holds them to anyway.

Daphne (Twisted) reads a whole request body into a temporary file before the ASGI application,
Django or any upload handler sees the request: a 300 MB upload was read in full (22 s) before it
was refused. Its request class is therefore given the limit: a body announced larger is answered
413 as soon as its headers are in, one that keeps coming past the limit (chunked, or longer than
announced) once it passes it, and the connection is closed so nothing more is read.
``limit_daphne_bodies`` installs it; station.asgi calls it, so ``daphne station.asgi:application``
and run_station's web processes both have it.
"""

import json

from daphne import http_protocol
from django.conf import settings

from station.api.errors import too_large_body


class LimitedWebRequest(http_protocol.WebRequest):
    """Daphne's request, refusing a body over its limit while it is being received."""

    refused = False
    received = 0
    limit = 0

    def gotLength(self, length):
        content_type = (self.requestHeaders.getRawHeaders(b"content-type") or [b""])[0].lower()
        files = content_type.startswith(b"multipart/form-data") or settings.DATA_UPLOAD_MAX_MEMORY_SIZE is None
        self.limit = settings.UPLOAD_MAX_BYTES if files else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().gotLength(0 if length is not None and length > self.limit else length)
        if length is not None and length > self.limit:
            self._refuse()

    def handleContentChunk(self, data):
        if self.refused:
            return
        self.received += len(data)
        if self.received > self.limit:
            self._refuse()
            return
        super().handleContentChunk(data)

    def _refuse(self) -> None:
        self.refused = True
        body = json.dumps(too_large_body(self.limit)).encode()
        self.channel.transport.write(
            b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: application/json\r\n"
            + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        self.channel.transport.loseConnection()


def limit_daphne_bodies() -> None:
    """Make Daphne build its requests from LimitedWebRequest (its factory looks the class up per connection)."""
    http_protocol.WebRequest = LimitedWebRequest
