"""ffmpeg as the recording engine: one process per run, writing numbered segments.

A recording is one or more *runs* of ffmpeg (a run ends when ffmpeg dies or
is stopped); each run writes segments named ``part-<run start ms>-<n>.<ext>``
in the recording's directory, so sorting names sorts them in time, whichever
agent wrote them. When the window closes, the parts are joined into one file.
"""

import signal
import subprocess
import time
from collections import deque
from pathlib import Path
from threading import Thread
from urllib.parse import urlsplit

from django.utils.translation import gettext_lazy as _

from ingest.media import probe
from station.errors import UserError
from station.processes import die_with_parent

# Encoder settings per output format: (ffmpeg args, file extension).
OUTPUT_PROFILES = {
    "mp3": (["-c:a", "libmp3lame", "-b:a", "320k"], "mp3"),
    "aac": (["-c:a", "aac", "-b:a", "256k"], "aac"),
    "flac": (["-c:a", "flac"], "flac"),
    "wav": (["-c:a", "pcm_s16le"], "wav"),
}
# Sources that produce data as fast as they can read must be paced to real time.
PACED_SCHEMES = {"lavfi", "file", ""}
DEVICE_FORMATS = {"alsa": "alsa", "pulse": "pulse", "v4l2": "v4l2", "lavfi": "lavfi"}
STOP_GRACE_SECONDS = 5


def input_args(source: str) -> list[str]:
    """ffmpeg input options for a recorder source URL, file path or device."""
    scheme = urlsplit(source).scheme.lower() if not source.startswith("/") else ""
    args = ["-re"] if scheme in PACED_SCHEMES else []
    if scheme in DEVICE_FORMATS:
        return [*args, "-f", DEVICE_FORMATS[scheme], "-i", source.split(":", 1)[1]]
    if scheme in ("http", "https", "icecast"):
        url = "http" + source[len("icecast"):] if scheme == "icecast" else source
        return [*args, "-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_delay_max", "2",
                "-rw_timeout", "10000000", "-i", url]
    return [*args, "-i", source]


class FfmpegRun:
    """One ffmpeg process recording a source into segments of a directory."""

    def __init__(self, *, source: str, directory: Path, output_format: str, segment_seconds: int):
        codec_args, self.extension = OUTPUT_PROFILES[output_format]
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.prefix = f"part-{int(time.time() * 1000):015d}"
        pattern = directory / f"{self.prefix}-%03d.{self.extension}"
        self.argv = [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
            # Progress on stdout tells us within half a second that data flows.
            "-progress", "pipe:1", "-stats_period", "0.5",
            *input_args(source),
            "-vn", "-ac", "2", "-ar", "44100", *codec_args,
            "-f", "segment", "-segment_time", str(segment_seconds), "-reset_timestamps", "1",
            # Write each packet at once, so a live asset's file grows in real time.
            "-segment_format_options", "flush_packets=1",
            str(pattern),
        ]
        self.started_at = time.time()
        self.recorded_seconds = 0.0
        self._stderr: deque[str] = deque(maxlen=20)
        self.process = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, errors="replace", preexec_fn=die_with_parent(signal.SIGTERM),  # SIGTERM: ffmpeg closes its file cleanly
        )
        Thread(target=self._read_progress, daemon=True).start()
        Thread(target=self._drain_stderr, daemon=True).start()

    def _read_progress(self) -> None:
        for line in self.process.stdout:
            key, _, value = line.strip().partition("=")
            if key == "out_time_us" and value.lstrip("-").isdigit():
                self.recorded_seconds = max(self.recorded_seconds, int(value) / 1e6)

    def _drain_stderr(self) -> None:
        for line in self.process.stderr:
            if line.strip():
                self._stderr.append(line.strip())

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def parts(self) -> list[Path]:
        return sorted(self.directory.glob(f"{self.prefix}-*.{self.extension}"))

    def has_output(self) -> bool:
        return self.recorded_seconds > 0 or any(part.stat().st_size > 0 for part in self.parts())

    def failure_reason(self) -> str:
        """ffmpeg's own last words, for the schedule's error message."""
        self.process.wait(timeout=5)
        time.sleep(0.05)  # let the drain thread take the last lines
        lines = list(self._stderr)
        return lines[-1] if lines else f"ffmpeg exited with code {self.process.returncode}"

    def request_stop(self) -> None:
        """Ask ffmpeg to stop now (SIGINT: it finishes the segment it is writing); doesn't wait."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)

    def stop(self) -> None:
        """Stop gracefully and wait, forcing it after STOP_GRACE_SECONDS."""
        if not self.alive():
            return
        self.request_stop()
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def recording_parts(directory: Path) -> list[Path]:
    """Every non-empty part in a recording's directory, in time order."""
    if not directory.exists():
        return []
    return sorted(p for p in directory.glob("part-*") if p.is_file() and p.stat().st_size > 0)


def last_run_end(directory: Path) -> float | None:
    """Epoch seconds at which the newest run's audio ends: its start (in its name) plus its parts' length."""
    parts = recording_parts(directory)
    if not parts:
        return None
    run = parts[-1].name.split("-")[1]
    run_parts = [p for p in parts if p.name.split("-")[1] == run]
    recorded = 0.0
    for part in run_parts:
        try:
            recorded += probe(part).duration_seconds
        except UserError:
            pass  # a part cut off mid-frame by a crash adds nothing we can count on
    return int(run) / 1000 + recorded


def join_parts(parts: list[Path], target: Path) -> Path:
    """Join parts into ``target`` without re-encoding; one part is simply renamed."""
    if len(parts) == 1:
        parts[0].replace(target)
        return target
    listing = target.with_suffix(".txt")
    listing.write_text("".join(f"file '{p.name}'\n" for p in parts))
    completed = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
         "-c", "copy", str(target)],
        capture_output=True, text=True, timeout=600, cwd=target.parent,
    )
    listing.unlink(missing_ok=True)
    if completed.returncode != 0:
        raise UserError("join_failed", _("Could not join the recording's parts: %(reason)s"),
                        {"reason": completed.stderr.strip()[-300:]})
    for part in parts:
        part.unlink(missing_ok=True)
    return target
