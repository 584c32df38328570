"""A channel's output as the engine writes it, read in tests."""

import array
import os
import threading
import time
from pathlib import Path

SAMPLE_RATE = 44100


class WavPipe(threading.Thread):
    """A channel's WAV file output read from a named pipe as the engine writes it: its left channel, and where
    its first sample falls on the wall clock (the earliest chunk arrival less its position: the stream's own timeline)."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        os.chmod(path, 0o666)  # the engine may run as ENGINE_USER
        self.path, self.chunks = path, []
        self.start()

    def run(self):
        with open(self.path, "rb", buffering=0) as pipe:
            while data := pipe.read(1 << 16):
                self.chunks.append((time.time(), data))

    def left(self) -> tuple[array.array, float]:
        stream = b"".join(data for _, data in self.chunks)
        data_start = stream.index(b"data") + 8
        anchor, offset = float("inf"), 0
        for arrival, data in self.chunks:
            offset += len(data)
            if offset - len(data) >= data_start:
                anchor = min(anchor, arrival - (offset - len(data) - data_start) / 4 / 44100)
        samples = array.array("h", stream[data_start:data_start + (len(stream) - data_start) // 4 * 4])
        return samples[0::2], anchor


def tone_spans(left: array.array, frequency: float, *, window_seconds: float = 0.01, loud: int = 300,
               gap_seconds: float = 0.05) -> list[tuple[float, float]]:
    """(start, end) in seconds of each stretch of a tone in the samples, told apart from other sounds and silence
    by its frequency in windows of ``window_seconds``; gaps shorter than ``gap_seconds`` don't split one."""
    size = int(SAMPLE_RATE * window_seconds)
    spans: list[list[float]] = []
    for index in range(0, len(left) - size, size):
        window = left[index:index + size]
        if max(window) < loud:
            continue
        crossings = sum(1 for a, b in zip(window, window[1:]) if (a < 0) != (b < 0))
        if abs(crossings / 2 / window_seconds - frequency) > frequency * 0.15:
            continue
        start, end = index / SAMPLE_RATE, (index + size) / SAMPLE_RATE
        if spans and start - spans[-1][1] < gap_seconds:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    return [(start, end) for start, end in spans]


def icecast_source(port: int, user: str, password: str, *, frequency: int) -> list[str]:
    """ffmpeg sending a tone to a channel's live input as a presenter's encoder does: an Icecast source, MP3,
    paced in real time and sent as it is encoded."""
    return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
            f"sine=frequency={frequency}:sample_rate=44100", "-c:a", "libmp3lame", "-b:a", "128k",
            "-flush_packets", "1", "-content_type", "audio/mpeg", "-f", "mp3",
            f"icecast://{user}:{password}@127.0.0.1:{port}/presenter"]
