"""Media files on disk: probing with ffprobe, loudness (EBU R128) with ffmpeg, checksums, generated test tones.

Files come from people (uploads) and from the network (downloads), so ffprobe opens them as
media containers only: playlists and scripts that name other inputs (HLS, concat, …) are not on
``MEDIA_FORMATS``, and no protocol but the file itself may be opened. Reasons shown to people
name the file, never its place on the disk.
"""

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.utils.translation import gettext_lazy as _

from station.errors import UserError


# Demuxers for audio and video files; what ffmpeg would also accept (hls, concat, image2, …) can open other files.
MEDIA_FORMATS = ",".join([
    "mp3", "aac", "ac3", "eac3", "ogg", "flac", "wav", "w64", "aiff", "caf", "mov", "matroska", "asf", "mpegts",
    "wv", "ape", "tta", "amr", "au", "mpc", "mpc8", "dsf",
])
CONTAINED_INPUT = ["-protocol_whitelist", "file,pipe", "-format_whitelist", MEDIA_FORMATS]


@dataclass(frozen=True)
class Probe:
    duration_seconds: float
    format_name: str


def probe(path: Path) -> Probe:
    """Read duration and container format with ffprobe; raise UserError for anything not playable."""
    try:
        completed = subprocess.run(
            ["ffprobe", "-v", "error", *CONTAINED_INPUT, "-print_format", "json", "-show_format", "-show_streams", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise UserError("probe_failed", _("Could not run ffprobe on %(file)s."), {"file": path.name}, inner=error) from error
    if completed.returncode != 0:
        raise UserError("not_media", _("%(file)s is not a media file ffprobe can read: %(reason)s"),
                        {"file": path.name, "reason": _reason(completed, path)})
    info = json.loads(completed.stdout)
    streams = [s for s in info.get("streams", []) if s.get("codec_type") in ("audio", "video")]
    duration = float(info.get("format", {}).get("duration") or 0)
    if not streams or duration <= 0:
        raise UserError("not_media", _("%(file)s has no audio or video to play."), {"file": path.name})
    return Probe(duration_seconds=duration, format_name=info["format"].get("format_name", ""))


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float  # -70.0 for silence: EBU R128's gate lets nothing through
    range_lu: float
    true_peak_dbtp: float | None  # None for digital silence (-inf)


# The summary ffmpeg's ebur128 filter logs at the end of the input.
_SUMMARY = re.compile(r"Summary:.*?\bI:\s+(?P<integrated>-?[\d.]+) LUFS.*?\bLRA:\s+(?P<range>[\d.]+) LU"
                      r".*?\bPeak:\s+(?P<peak>-?[\d.]+|-inf) dBFS", re.DOTALL)


def measure_loudness(path: Path, *, duration_seconds: float) -> Loudness:
    """Integrated loudness, loudness range and true peak of the file's first audio stream (EBU R128, ffmpeg's
    ebur128 filter: the whole file decoded, about 50 times faster than real time); UserError if it can't be read."""
    try:
        completed = subprocess.run(
            ["nice", "-n", "10",  # background work: the downloads' and the air's processes come first
             "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info", *CONTAINED_INPUT, "-i", str(path),
             "-map", "0:a:0", "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-"],
            capture_output=True, text=True, timeout=60 + duration_seconds / 5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise UserError("loudness_failed", _("Could not measure the loudness of %(file)s."), {"file": path.name},
                        inner=error) from error
    summary = _SUMMARY.search(completed.stderr) if completed.returncode == 0 else None
    if summary is None:
        raise UserError("loudness_failed", _("Could not measure the loudness of %(file)s: %(reason)s"),
                        {"file": path.name, "reason": _reason(completed, path)})
    peak = summary["peak"]
    return Loudness(integrated_lufs=float(summary["integrated"]), range_lu=float(summary["range"]),
                    true_peak_dbtp=None if peak == "-inf" else float(peak))


def _reason(completed: subprocess.CompletedProcess, path: Path) -> str:
    """The last line ffprobe or ffmpeg wrote about ``path``, naming the file but not its place on disk (ours)."""
    reason = completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else f"exit {completed.returncode}"
    return reason.replace(str(path), path.name).replace(str(path.parent), "")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def generate_tone(path: Path, *, frequency: int, seconds: float) -> Path:
    """Write a sine tone with ffmpeg: demo and test material that needs no download."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=44100:duration={seconds}",
            "-ac", "2", "-b:a", "128k", str(path),
        ],
        check=True,
        timeout=60,
    )
    return path
