"""Webstreams reach an engine through its agent, so the station's address checks apply to them.

Liquidsoap's HTTP input would connect wherever a playlist item's URL (and its redirects) point.
Instead the engine is given a loopback URL of this relay; the relay fetches the item's stream
through ``station.outbound`` (public addresses only, redirects checked) and passes the bytes on.
A stream that can't be fetched, or that is a playlist naming other URLs (HLS, DASH, PLS, M3U)
rather than audio, answers 502, and the reason is kept for the desk's alert.
"""

import logging
import re
from http.server import BaseHTTPRequestHandler

import requests
from django.utils.translation import gettext_lazy as _lazy

from station import outbound
from station.errors import UserError
from station.loopback import LoopbackServer

logger = logging.getLogger(__name__)
USER_AGENT = "Stationkeeper-playout/1"
CONNECT_TIMEOUT, READ_TIMEOUT = 5, 10
CHUNK_BYTES = 1 << 14
_PATH = re.compile(r"/webstream/(\d+)")
# How playlists begin: their entries are URLs an engine would fetch past the relay's checks.
_PLAYLIST_STARTS = (b"#EXTM3U", b"<?xml", b"<MPD", b"[playlist]", b"[Reference]", b"<ASX", b"<asx", b"http://", b"https://")


def is_playlist(first_bytes: bytes) -> bool:
    """Whether a stream's first bytes are a playlist (HLS, DASH, PLS, ASX, M3U) rather than audio."""
    return first_bytes.lstrip().startswith(_PLAYLIST_STARTS)


PLAYLIST_REFUSED = _lazy("it is a playlist of other addresses, not audio")
_AUDIO_TYPE = re.compile(r"(audio/[\w.+-]+|application/ogg)")


class WebstreamRelay(LoopbackServer):
    thread_name = "webstream-relay"

    def __init__(self):
        self.streams: dict[int, str] = {}  # item id → the operator's URL
        self.problems: dict[int, str] = {}  # item id → why its stream could not be fetched
        super().__init__()

    def url_for(self, item_id: int, url: str) -> str:
        """The loopback URL the engine connects to for this item's stream."""
        self.streams[int(item_id)] = url
        self.problems.pop(int(item_id), None)
        return f"{self.base_url}/webstream/{int(item_id)}"

    def problem(self, item_id: int) -> str:
        return self.problems.get(int(item_id), "")

    def answer_get(self, request: BaseHTTPRequestHandler) -> None:
        match = _PATH.fullmatch(request.path)
        url = self.streams.get(int(match[1])) if match else None
        if url is None:
            request.send_error(404)
            return
        item_id, answered = int(match[1]), False
        try:
            with outbound.guarded_session(user_agent=USER_AGENT) as session, session.get(
                    url, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)) as upstream:
                if upstream.status_code != 200:
                    raise UserError("webstream_http_error", "HTTP %(status)d", {"status": upstream.status_code})
                first = upstream.raw.read1(CHUNK_BYTES)
                if is_playlist(first):
                    raise UserError("webstream_is_playlist", PLAYLIST_REFUSED)
                content_type = upstream.headers.get("Content-Type", "").split(";")[0].strip()
                request.send_response(200)
                request.send_header("Content-Type", content_type if _AUDIO_TYPE.fullmatch(content_type)
                                    else "application/octet-stream")
                request.end_headers()
                answered = True
                chunk = first
                while chunk:  # as it arrives, not in full chunks
                    request.wfile.write(chunk)
                    chunk = upstream.raw.read1(CHUNK_BYTES)
        except (BrokenPipeError, ConnectionResetError):
            return  # the engine let go: the item's window is over or it was skipped
        except UserError as error:
            self.problems[item_id] = str(error)
        except requests.RequestException as error:
            self.problems[item_id] = type(error).__name__
        else:
            return
        logger.warning("webstream relay: item %s (%s): %s", item_id, url, self.problems[item_id])
        if not answered:  # once audio flowed, closing the connection is the engine's signal
            try:
                request.send_error(502)
            except OSError:
                pass
