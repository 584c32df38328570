"""A live MP3 source that marks the wall clock, served like an Icecast mount (for tests and benches).

Every whole wall-clock second starts with a click (a 2 kHz tone) whose length says which second
it is: 10 ms × (1 + second mod 8), so a recording that is seconds off is still read right. Each MP3
frame is sent when its last sample is due on the clock (a live encoder can't send sooner); a
listener that connects first gets the last ``burst_seconds`` at once, as Icecast does. ``drop``
closes every connection and refuses new ones for a while, as a source that goes away.
"""

import array
import math
import subprocess
import time
from pathlib import Path

from recorders.tests.audio import sound_spans
from recorders.tests.stream_server import LoopbackStream

SAMPLE_RATE = 44100
FRAME_SAMPLES = 1152
TRACK_SECONDS = 320  # a whole number of MP3 frames and of seconds: the clicks stay on whole seconds
CLICK_UNIT_SECONDS = 0.01
CLICK_LOUD = 4000
_MPEG1_L3_KBPS = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]


def _click_track(seconds: int) -> bytes:
    samples = array.array("h", bytes(2 * seconds * SAMPLE_RATE))
    for second in range(seconds):
        length = int(CLICK_UNIT_SECONDS * (1 + second % 8) * SAMPLE_RATE)
        for n in range(length):
            samples[second * SAMPLE_RATE + n] = int(16000 * math.sin(2 * math.pi * 2000 * n / SAMPLE_RATE))
    return samples.tobytes()


def _frames(mp3: bytes) -> list[bytes]:
    frames, at = [], 0
    while at + 4 <= len(mp3):
        header = int.from_bytes(mp3[at:at + 4], "big")
        if header >> 21 != 0x7FF:
            at += 1
            continue
        size = 144 * _MPEG1_L3_KBPS[(header >> 12) & 0xF] * 1000 // SAMPLE_RATE + ((header >> 9) & 1)
        frames.append(mp3[at:at + size])
        at += size
    return frames


def decoded_as_stream(mp3: bytes) -> array.array:
    completed = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "mp3", "-i", "pipe:0", "-ac", "1",
                                "-f", "s16le", "pipe:1"], input=mp3, capture_output=True, check=True)
    samples = array.array("h")
    samples.frombytes(completed.stdout)
    return samples


class ClockSource(LoopbackStream):
    def __init__(self, directory: Path, *, burst_seconds: float = 2.0, address: str = "127.0.0.1"):
        directory.mkdir(parents=True, exist_ok=True)
        encoded = subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1", "-i", "pipe:0",
             "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k", "-reservoir", "0", "-write_xing", "0", "-f", "mp3", "pipe:1"],
            input=_click_track(TRACK_SECONDS), capture_output=True, check=True,
        ).stdout
        self.frames = _frames(encoded)
        # Where the first click is once decoded as a listener decodes a stream (the codec's delay included).
        first_click = next(n for n, value in enumerate(decoded_as_stream(b"".join(self.frames[:40])))
                           if abs(value) > CLICK_LOUD)
        # Sample q of the decoded stream is due at epoch + (q - first_click) / rate; epoch is a whole second.
        self.epoch = math.ceil(time.time()) + 1 + burst_seconds
        self.first_click = first_click
        self.burst_frames = int(burst_seconds * SAMPLE_RATE / FRAME_SAMPLES)
        super().__init__("clock.mp3", address=address)

    def due(self, frame: int) -> float:
        """When a frame is complete on the clock: its last sample's instant."""
        return self.epoch + ((frame + 1) * FRAME_SAMPLES - self.first_click) / SAMPLE_RATE

    def serve(self, out) -> None:
        # The burst: the last frames made, none from while the source was away.
        frame = int((time.time() - self.epoch) * SAMPLE_RATE + self.first_click) // FRAME_SAMPLES - self.burst_frames
        while self.due(frame) < self.dropped_until:
            frame += 1
        frame = max(0, frame)
        while frame < len(self.frames) and not self.dropped():
            wait = self.due(frame) - time.time()
            if wait > 0:
                out.flush()
                time.sleep(wait)
            out.write(self.frames[frame])
            frame += 1

    def first_sample_instant(self, samples: array.array, *, around: float) -> float | None:
        return first_sample_instant(samples, epoch=self.epoch, around=around)


def clicks(samples: array.array) -> list[tuple[float, int]]:
    """(onset in seconds, second mod 8 it marks) of every click in a recording's decoded samples."""
    return [(start, (round((end - start) / CLICK_UNIT_SECONDS) - 1) % 8)
            for start, end in sound_spans(samples, quiet_seconds=0.01, loud=CLICK_LOUD)]


def first_sample_instant(samples: array.array, *, epoch: float, around: float) -> float | None:
    """The wall-clock instant of a recording's first sample, read from the clicks of a source whose first click was
    at ``epoch`` (``around``: a guess within 4 s)."""
    marks = [(onset, mark) for onset, mark in clicks(samples) if onset > 0.002]  # a click cut by the start is misread
    if not marks:
        return None
    onset, mark = marks[0]
    second = round(around + onset - epoch)  # seconds since the track's first click
    second += ((mark - second) % 8 + 4) % 8 - 4  # the one nearest the guess that the click's length names
    return epoch + second - onset
