"""What a recording holds, read from its decoded samples (for tests and benches)."""

import array
import subprocess
from pathlib import Path

SAMPLE_RATE = 44100
LOUD = 300  # of 32767: well above an encoder's noise, far below a tone


def decoded(path: Path) -> array.array:
    """The file's left channel as 16-bit samples at 44.1 kHz, as a player decodes it (encoder delay trimmed)."""
    completed = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-ac", "1", "-ar",
                                str(SAMPLE_RATE), "-f", "s16le", "pipe:1"], capture_output=True, check=True, timeout=120)
    samples = array.array("h")
    samples.frombytes(completed.stdout[:len(completed.stdout) // 2 * 2])
    return samples


def sound_spans(samples: array.array, *, quiet_seconds: float = 0.1, loud: int = LOUD) -> list[tuple[float, float]]:
    """(start, end) in seconds of each stretch of sound (above ``loud``); quiet shorter than ``quiet_seconds`` doesn't
    split one."""
    spans, start, last_loud = [], None, None
    gap = int(quiet_seconds * SAMPLE_RATE)
    for index, value in enumerate(samples):
        if abs(value) > loud:
            if start is None or index - last_loud > gap:
                if start is not None:
                    spans.append((start / SAMPLE_RATE, (last_loud + 1) / SAMPLE_RATE))
                start = index
            last_loud = index
    if start is not None:
        spans.append((start / SAMPLE_RATE, (last_loud + 1) / SAMPLE_RATE))
    return spans
