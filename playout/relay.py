"""Webstreams reach an engine through its agent, so the station's address checks apply to them.

Liquidsoap's HTTP input would connect wherever a playlist item's URL (and its redirects) point.
Instead the engine is given a loopback URL of this relay; the relay fetches the item's stream
through ``station.outbound`` (public addresses only, redirects checked) and passes the bytes on.
A stream that can't be fetched answers 502, and the reason is kept for the desk's alert.
"""

import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from station import outbound
from station.errors import UserError

logger = logging.getLogger(__name__)
USER_AGENT = "Stationkeeper-playout/1"
CONNECT_TIMEOUT, READ_TIMEOUT = 5, 10
CHUNK_BYTES = 1 << 14
_PATH = re.compile(r"/webstream/(\d+)")


class WebstreamRelay:
    def __init__(self):
        self.streams: dict[int, str] = {}  # item id → the operator's URL
        self.problems: dict[int, str] = {}  # item id → why its stream could not be fetched
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                relay._serve(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="webstream-relay", daemon=True).start()

    def url_for(self, item_id: int, url: str) -> str:
        """The loopback URL the engine connects to for this item's stream."""
        self.streams[int(item_id)] = url
        self.problems.pop(int(item_id), None)
        return f"{self.base_url}/webstream/{int(item_id)}"

    def problem(self, item_id: int) -> str:
        return self.problems.get(int(item_id), "")

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
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
                request.send_response(200)
                request.send_header("Content-Type", upstream.headers.get("Content-Type", "application/octet-stream"))
                request.end_headers()
                answered = True
                while chunk := upstream.raw.read1(CHUNK_BYTES):  # as it arrives, not in full chunks
                    request.wfile.write(chunk)
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

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
