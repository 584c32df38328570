"""Files served with byte ranges (RFC 9110 §14): what podcast apps and browsers' players ask for to seek and resume."""

import re
from pathlib import Path

from django.http import FileResponse, HttpRequest, HttpResponse

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def ranged_file(request: HttpRequest, path: Path, content_type: str) -> HttpResponse:
    """The file, whole (200) or the one range asked for (206); 416 for a range outside it. Several ranges in one
    request get the whole file, which the RFC allows."""
    size = path.stat().st_size
    asked = _RANGE.fullmatch(request.headers.get("Range", "").strip())
    if asked is None or not (asked[1] or asked[2]):
        response = FileResponse(path.open("rb"), content_type=content_type)
        response["Accept-Ranges"] = "bytes"
        return response
    if asked[1]:
        start, end = int(asked[1]), min(int(asked[2]) if asked[2] else size - 1, size - 1)
    else:  # the last N bytes
        start, end = max(0, size - int(asked[2])), size - 1
    if start >= size or start > end:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    with path.open("rb") as file:
        file.seek(start)
        body = file.read(end - start + 1)  # an episode's range at a time: what players ask for is small
    response = HttpResponse(body, status=206, content_type=content_type)
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    return response
