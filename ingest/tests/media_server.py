"""A real local HTTP server for ingest tests and the bench: media files, a feed, and misbehaving endpoints.

Files are served with Range support (206) through sendfile, optionally paced per
connection like a remote host. Per path, a test can make the server fail N times (503),
cut the body N times, always cut it short (truncated), stall mid-body, trickle slowly,
or omit Content-Length. POST /archive is a publishing
target that fails N times and records what it accepted.
"""

import json
import threading
import time
from collections import Counter
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a burst of parallel clients must not wait out a SYN retry


class MediaServer:
    def __init__(self):
        self.files: dict[str, tuple[Path, str]] = {}  # url path → (file, content type)
        self.feed_items: list[tuple[str, str, str]] = []  # (guid, title, url path), newest first like real feeds
        self.fail_times: Counter = Counter()  # path → answers 503 this many more times
        self.cut_times: Counter = Counter()  # path → cuts the body halfway this many more times
        self.truncated: set[str] = set()  # paths that always end before their Content-Length
        self.stalled: set[str] = set()  # paths that go silent halfway
        self.trickled: set[str] = set()  # paths sent at 40 KB/s
        self.pace: int | None = None  # bytes per second per connection for every file, like a remote host
        self.no_length: set[str] = set()  # paths sent without Content-Length
        self.archive_fail_times = 0
        self.archived: list[dict] = []
        self.hits: Counter = Counter()
        self.range_requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def add(self, path: str, file: Path, content_type: str = "audio/mpeg") -> str:
        self.files["/" + path.lstrip("/")] = (file, content_type)
        return self.url(path)

    def take(self, counter: Counter, path: str) -> bool:
        with self._lock:
            if counter[path] > 0:
                counter[path] -= 1
                return True
            return False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def feed_xml(self) -> bytes:
        entries = "".join(
            f"<item><guid>{escape(guid)}</guid><title>{escape(title)}</title>"
            f'<enclosure url="{escape(self.url(path))}" type="audio/mpeg" length="0"/></item>'
            for guid, title, path in self.feed_items
        )
        return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Test podcast</title>{entries}'
                "</channel></rss>").encode()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                server.hits[path] += 1
                if path == "/feed.xml":
                    return self._send_bytes(server.feed_xml(), "application/rss+xml")
                if path == "/page.html":
                    return self._send_bytes(b"<html><body>Not found, but friendly</body></html>", "text/html")
                if path not in server.files or server.take(server.fail_times, path):
                    self.send_error(404 if path not in server.files else 503)
                    return
                self._send_file(path, *server.files[path])

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if server.archive_fail_times > 0:
                    server.archive_fail_times -= 1
                    self.send_error(503)
                    return
                message = BytesParser(policy=HTTP).parsebytes(
                    b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
                parts = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                         for part in message.iter_parts()}
                server.archived.append({"metadata": json.loads(parts["metadata"]), "size": len(parts["file"]),
                                        "key": self.headers.get("Idempotency-Key")})
                self._send_bytes(b'{"ok": true}', "application/json", status=201)

            def _send_bytes(self, data: bytes, content_type: str, status: int = 200):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send_file(self, path: str, file: Path, content_type: str):
                size = file.stat().st_size
                start = 0
                wanted = self.headers.get("Range", "")
                if wanted.startswith("bytes=") and wanted.endswith("-"):
                    server.range_requests.append((path, wanted))
                    start = int(wanted[6:-1])
                    if start >= size:
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Accept-Ranges", "bytes")
                if path not in server.no_length:
                    self.send_header("Content-Length", str(size - start))
                self.end_headers()
                half = start + (size - start) // 2
                self.wfile.flush()
                with file.open("rb") as handle:
                    if path in server.truncated or path in server.stalled or server.take(server.cut_times, path):
                        self.connection.sendfile(handle, offset=start, count=max(1, half - start))
                        if path in server.stalled:
                            time.sleep(3)
                    else:
                        self._send_paced(handle, start, size, 40_000 if path in server.trickled else server.pace)
                self.close_connection = True

            def _send_paced(self, handle, start: int, size: int, rate: int | None):
                if rate is None:
                    self.connection.sendfile(handle, offset=start, count=size - start)
                    return
                began, sent, step = time.monotonic(), 0, max(4096, rate // 20)
                while start + sent < size:
                    sent += self.connection.sendfile(handle, offset=start + sent, count=min(step, size - start - sent))
                    time.sleep(max(0.0, sent / rate - (time.monotonic() - began)))

        return Handler
