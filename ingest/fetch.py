"""HTTP downloads into a partial file: streamed, resumable with Range, bounded in time and size.

Edge cases, each a UserError with its reason:
- 4xx: permanent (``http_error``); 5xx and connection errors: retried, then ``unreachable``.
- a connection cut or stalled mid-body: resumed from the bytes on disk (``Range: bytes=N-``);
  a server that ignores Range (200) starts over; after the last attempt ``interrupted``.
- more than ``max_bytes`` announced or received: ``too_large``, before or while reading.
- slower than the overall deadline: ``too_slow``; text (an HTML error page): ``not_media``.
"""

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from station import outbound
from station.errors import UserError

logger = logging.getLogger(__name__)
CHUNK_BYTES = 1 << 20
PROGRESS_EVERY_SECONDS = 0.5
USER_AGENT = "Stationkeeper-ingest/1"


@dataclass(frozen=True)
class Fetched:
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class Limits:
    connect_timeout: float
    read_timeout: float
    total_timeout: float
    max_bytes: int
    attempts: int
    backoff: float

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(
            connect_timeout=settings.INGEST_CONNECT_TIMEOUT_SECONDS,
            read_timeout=settings.INGEST_READ_TIMEOUT_SECONDS,
            total_timeout=settings.INGEST_DOWNLOAD_TIMEOUT_SECONDS,
            max_bytes=settings.INGEST_MAX_BYTES,
            attempts=settings.INGEST_DOWNLOAD_ATTEMPTS,
            backoff=settings.INGEST_RETRY_BACKOFF_SECONDS,
        )


class _Retry(Exception):
    """A transient failure: try again (resuming) while attempts remain."""

    def __init__(self, error: UserError):
        super().__init__(error.code)
        self.error = error


def _too_large(url: str, limit: int) -> UserError:
    return UserError("too_large", _("%(url)s is larger than the limit of %(limit)s."), {"url": url, "limit": filesizeformat(limit)})


def _interrupted(url: str, reason: str, done: int, total: int | None, inner: BaseException | None = None) -> "_Retry":
    return _Retry(UserError(
        "interrupted", _("The download of %(url)s was interrupted (%(reason)s) at %(done)d of %(total)s bytes."),
        {"url": url, "reason": reason, "done": done, "total": total if total is not None else "?"}, inner=inner))


def _start_offset(response: requests.Response, offset: int) -> int:
    """Where the body starts in the file: ``offset`` for a matching 206, 0 for a full response."""
    if response.status_code == 206:
        content_range = response.headers.get("Content-Range", "")
        if content_range.startswith(f"bytes {offset}-"):
            return offset
    return 0


def _total(response: requests.Response, start: int) -> int | None:
    content_range = response.headers.get("Content-Range", "")
    if response.status_code == 206 and "/" in content_range and not content_range.endswith("/*"):
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def fetch_to_file(url: str, partial: Path, *, limits: Limits,
                  on_progress: Callable[[int, int | None], None] = lambda done, total: None) -> Fetched:
    """Download ``url`` into ``partial`` (resuming what is already there); return its size and SHA-256."""
    partial.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + limits.total_timeout
    last_error = None
    with outbound.guarded_session(user_agent=USER_AGENT) as session:
        for attempt in range(1, limits.attempts + 1):
            try:
                return _attempt(session, url, partial, limits=limits, deadline=deadline, on_progress=on_progress)
            except _Retry as retry:
                last_error = retry.error
                logger.info("download of %s, attempt %d/%d: %s", url, attempt, limits.attempts, retry.error)
                if attempt < limits.attempts:
                    time.sleep(min(limits.backoff * 2 ** (attempt - 1), max(0.0, deadline - time.monotonic())))
    raise last_error


def _attempt(session, url, partial: Path, *, limits: Limits, deadline: float, on_progress) -> Fetched:
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}  # file bytes, resumable
    try:
        response = session.get(url, stream=True, headers=headers, timeout=(limits.connect_timeout, limits.read_timeout))
    except requests.RequestException as error:
        raise _Retry(UserError("unreachable", _("Could not reach %(url)s: %(reason)s"),
                               {"url": url, "reason": type(error).__name__}, inner=error)) from error
    with response:
        if response.status_code == 416 and offset:
            partial.unlink()  # what we kept no longer matches the file on the server: start over
            raise _Retry(UserError("interrupted", _("%(url)s changed while it was downloading."), {"url": url}))
        if response.status_code >= 400:
            error = UserError("http_error", _("%(url)s answered HTTP %(status)d %(reason)s."),
                              {"url": url, "status": response.status_code, "reason": response.reason})
            if response.status_code >= 500 or response.status_code == 429:
                raise _Retry(error)
            raise error
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type.startswith("text/"):
            raise UserError("not_media", _("%(url)s sent %(type)s, not media."), {"url": url, "type": content_type})
        start = _start_offset(response, offset)
        total = _total(response, start)
        if total is not None and total > limits.max_bytes:
            raise _too_large(url, limits.max_bytes)
        digest = hashlib.sha256()
        mode = "r+b" if start else "wb"
        with partial.open(mode) as out:
            if start:
                for block in iter(lambda: out.read(CHUNK_BYTES), b""):
                    digest.update(block)
                out.truncate(start)
            done = start
            reported = time.monotonic()
            on_progress(done, total)
            try:
                # read1 hands over whatever arrived, so a cut connection loses no byte already received
                while chunk := response.raw.read1(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if done > limits.max_bytes:
                        raise _too_large(url, limits.max_bytes)
                    now = time.monotonic()
                    if now > deadline:
                        raise UserError("too_slow", _("%(url)s took longer than %(seconds)d s to download."),
                                        {"url": url, "seconds": limits.total_timeout})
                    if now - reported >= PROGRESS_EVERY_SECONDS:
                        on_progress(done, total)
                        reported = now
            except (urllib3.exceptions.HTTPError, OSError) as error:  # cut or stalled mid-body: resume from what we have
                out.flush()
                reason = "stalled" if isinstance(error, (urllib3.exceptions.ReadTimeoutError, TimeoutError)) else "cut"
                raise _interrupted(url, reason, done, total, inner=error) from error
        on_progress(done, total)
        if total is not None and done < total:
            raise _interrupted(url, "cut", done, total)
        return Fetched(path=partial, size=done, sha256=digest.hexdigest())
