"""A local live audio stream, paced like an Icecast mount, for recording tests."""

import socket
import time
from pathlib import Path

from ingest.media import generate_tone
from station.tests.http_servers import QuietHandler, serve_in_background

BITRATE_BYTES_PER_SECOND = 128_000 // 8
CHUNK_SECONDS = 0.05


class LoopbackStream:
    """An endless HTTP audio stream on loopback (or ``address``): each listener gets what ``serve`` writes (paced by
    the subclass).

    While ``dropped_until`` is ahead, connections are closed and new ones refused (503): a source that goes away.
    """

    def __init__(self, path: str, *, address: str = "127.0.0.1"):
        self.dropped_until = 0.0
        stream = self

        class Handler(QuietHandler):
            def do_GET(self):
                if stream.dropped():
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "audio/mpeg")
                self.end_headers()
                try:
                    stream.serve(self.wfile)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = serve_in_background(Handler, address)
        self.url = f"http://{address}:{self.server.server_address[1]}/{path}"

    def serve(self, out) -> None:
        raise NotImplementedError

    def dropped(self) -> bool:
        return time.time() < self.dropped_until

    def drop(self, seconds: float) -> None:
        self.dropped_until = time.time() + seconds

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class PacedStream(LoopbackStream):
    """Serves an endless MP3 at /stream.mp3 in real time (burst-free), from a generated tone (0 Hz: silence)."""

    def __init__(self, directory: Path, *, frequency: int = 523):
        self.audio = generate_tone(directory / "source.mp3", frequency=frequency, seconds=30).read_bytes()
        super().__init__("stream.mp3")

    def serve(self, out) -> None:
        chunk = int(BITRATE_BYTES_PER_SECOND * CHUNK_SECONDS)
        began, sent, offset = time.monotonic(), 0, 0
        while not self.dropped():
            piece = self.audio[offset:offset + chunk] or self.audio[:chunk]
            offset = (offset + chunk) % len(self.audio)
            out.write(piece)
            sent += len(piece)
            ahead = sent / BITRATE_BYTES_PER_SECOND - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
