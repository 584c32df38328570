"""A local live audio stream, paced like an Icecast mount, for recording tests."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ingest.media import generate_tone

BITRATE_BYTES_PER_SECOND = 128_000 // 8
CHUNK_SECONDS = 0.05


class PacedStream:
    """Serves an endless MP3 at /stream.mp3 in real time (burst-free), from a generated tone."""

    def __init__(self, directory: Path):
        self.audio = generate_tone(directory / "source.mp3", frequency=523, seconds=30).read_bytes()
        stream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "audio/mpeg")
                self.end_headers()
                stream.serve(self.wfile)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mp3"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, out) -> None:
        chunk = int(BITRATE_BYTES_PER_SECOND * CHUNK_SECONDS)
        began, sent, offset = time.monotonic(), 0, 0
        try:
            while True:
                piece = self.audio[offset:offset + chunk] or self.audio[:chunk]
                offset = (offset + chunk) % len(self.audio)
                out.write(piece)
                sent += len(piece)
                ahead = sent / BITRATE_BYTES_PER_SECOND - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
