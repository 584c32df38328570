"""ffmpeg as the recording engine: one process per run, writing numbered segments.

A recording is one or more *runs* of ffmpeg (a run ends when ffmpeg dies or
is stopped); each run writes segments named ``part-<run start ms>-<n>.<ext>``
in the recording's directory, so sorting names sorts them in time, whichever
agent wrote them. When the window closes, the parts are joined into one file.

ffmpeg's input comes from the parsed source (recorders.sources), never from its text: a
stream arrives on ffmpeg's standard input from a ``StreamFeeder``, and ffmpeg may open no
protocol and no container but the few each kind needs. A run records at most the seconds it
is given, so a source that sends faster than real time can't fill the disk.
"""

import logging
import signal
import subprocess
import time
from pathlib import Path
from threading import Event, Thread

import requests
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from ingest.media import MEDIA_FORMATS, probe
from recorders.sources import Source, srt_caller_url
from station import outbound
from station.errors import UserError
from station.processes import EngineProcess, engine_account

logger = logging.getLogger(__name__)

# Encoder settings per output format: (ffmpeg args, file extension).
OUTPUT_PROFILES = {
    "mp3": (["-c:a", "libmp3lame", "-b:a", "320k"], "mp3"),
    "aac": (["-c:a", "aac", "-b:a", "256k"], "aac"),
    "flac": (["-c:a", "flac"], "flac"),
    "wav": (["-c:a", "pcm_s16le"], "wav"),
}
USER_AGENT = "Stationkeeper-recorder/1"
STREAM_CHUNK_BYTES = 1 << 14
STREAM_RECONNECT_SECONDS = (0.5, 1, 2)


def input_args(source: Source) -> list[str]:
    """ffmpeg's input options for a parsed source: each kind opens only what it needs."""
    if source.kind == "stream":  # bytes from the StreamFeeder; a playlist format (HLS…) would open other inputs
        return ["-protocol_whitelist", "pipe", "-format_whitelist", MEDIA_FORMATS, "-i", "pipe:0"]
    if source.kind == "srt":
        return ["-protocol_whitelist", "srt", "-format_whitelist", MEDIA_FORMATS, "-i", srt_caller_url(source)]
    if source.kind == "device":
        device_format, _sep, name = source.device.partition(":")
        return ["-f", device_format, "-i", name]
    if source.kind == "tone":  # a generator: paced to real time
        return ["-re", "-f", "lavfi", "-i", f"sine=frequency={int(source.frequency)}:sample_rate=44100"]
    raise ValueError(f"no ffmpeg input for a {source.kind} source")


class StreamFeeder:
    """Fetch a stream through station.outbound and write it into ffmpeg's standard input.

    A live stream that drops is fetched again (its bytes continue where the new connection
    starts); a finite one (a file, with a Content-Length) is fed once, then its end is ffmpeg's.
    A refused address, an HTTP error or a first connection that fails ends the feed with its
    reason, for the window's error.
    """

    def __init__(self, url: str, sink):
        self.url, self.sink = url, sink
        self.failure = ""
        self.finished = False  # a finite source was fed whole
        self.connected = False  # some connection answered: later drops are connected again
        self.stopping = Event()
        Thread(target=self._feed, name="stream-feeder", daemon=True).start()

    def _feed(self) -> None:
        reconnects = 0
        try:
            with outbound.guarded_session(user_agent=USER_AGENT) as session:
                while not self.stopping.is_set():
                    try:
                        if self._feed_once(session):
                            self.finished = True
                            return
                        reconnects = 0
                    except (requests.RequestException, TimeoutError) as error:
                        if not self.connected:
                            self.failure = _("%(url)s cannot be reached: %(reason)s") % {
                                "url": self.url, "reason": _connection_problem(error)}
                            return
                        logger.info("stream %s: %s; connecting again", self.url, type(error).__name__)
                    delay = STREAM_RECONNECT_SECONDS[min(reconnects, len(STREAM_RECONNECT_SECONDS) - 1)]
                    reconnects += 1
                    self.stopping.wait(delay)
        except UserError as error:
            self.failure = str(error)
        except (BrokenPipeError, ValueError, OSError):
            pass  # ffmpeg stopped reading: it is stopping or died, and says why itself
        finally:
            try:
                self.sink.close()
            except OSError:
                pass

    def _feed_once(self, session) -> bool:
        """Feed one connection's bytes; True if the source was finite and is all fed."""
        timeout = (settings.INGEST_CONNECT_TIMEOUT_SECONDS, settings.RECORDER_STARTUP_TIMEOUT_SECONDS)
        with session.get(self.url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise UserError("stream_http_error", _("%(url)s answered HTTP %(status)d."),
                                {"url": self.url, "status": response.status_code})
            self.connected = True
            finite = response.headers.get("Content-Length", "").isdigit()
            # read1 hands over what has arrived: a live stream reaches ffmpeg as it comes, not in full chunks.
            while chunk := response.raw.read1(STREAM_CHUNK_BYTES):
                if self.stopping.is_set():
                    return False
                self.sink.write(chunk)
                self.sink.flush()
            return finite

    def stop(self) -> None:
        self.stopping.set()


def _connection_problem(error: BaseException) -> str:
    """Why a connection failed in words a person knows (Connection refused, …), not the HTTP library's."""
    cause = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__ or getattr(cause, "reason", None)
        if not isinstance(cause, BaseException):
            break
    return type(error).__name__


class FfmpegRun(EngineProcess):
    """One ffmpeg process recording a source into segments of a directory, for at most ``max_seconds``."""

    stop_signal = signal.SIGINT  # ffmpeg finishes the segment it is writing

    def __init__(self, *, source: Source, directory: Path, output_format: str, segment_seconds: int, max_seconds: float):
        codec_args, self.extension = OUTPUT_PROFILES[output_format]
        self.max_seconds = max_seconds
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.prefix = f"part-{int(time.time() * 1000):015d}"
        pattern = directory / f"{self.prefix}-%03d.{self.extension}"
        self.argv = [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
            # Progress on stdout tells us within half a second that data flows.
            "-progress", "pipe:1", "-stats_period", "0.5",
            *input_args(source),
            "-t", f"{max_seconds:.3f}",
            "-vn", "-ac", "2", "-ar", "44100", *codec_args,
            "-f", "segment", "-segment_time", str(segment_seconds), "-reset_timestamps", "1",
            # Write each packet at once, so a live asset's file grows in real time.
            "-segment_format_options", "flush_packets=1",
            str(pattern),
        ]
        self.started_at = time.time()
        self.recorded_seconds = 0.0
        super().__init__(
            self.argv, stdin=subprocess.PIPE if source.kind == "stream" else subprocess.DEVNULL,
            death_signal=signal.SIGTERM,  # SIGTERM: ffmpeg closes its file cleanly
            writes=(directory,),
        )
        self.feeder = StreamFeeder(source.url, self.process.stdin.buffer) if source.kind == "stream" else None

    def read_output(self, line: str) -> None:
        key, _, value = line.strip().partition("=")
        if key == "out_time_us" and value.lstrip("-").isdigit():
            self.recorded_seconds = max(self.recorded_seconds, int(value) / 1e6)

    def parts(self) -> list[Path]:
        return sorted(self.directory.glob(f"{self.prefix}-*.{self.extension}"))

    def has_output(self) -> bool:
        return self.recorded_seconds > 0 or any(part.stat().st_size > 0 for part in self.parts())

    @property
    def source_ended(self) -> bool:
        """A finite source was recorded to its end: nothing more will come from it in this window."""
        return self.feeder is not None and self.feeder.finished

    def failure_reason(self) -> str:
        """Why the run ended: the feed's refusal or HTTP error, else ffmpeg's own last words."""
        reason = self.exit_reason()
        if self.feeder is not None and self.feeder.failure:
            return self.feeder.failure
        # its own files are named as they are, without the station's directories around them
        return reason.replace(f"{self.directory}/", "")

    def request_stop(self) -> None:
        """Ask ffmpeg to stop now; doesn't wait."""
        if self.feeder is not None:
            self.feeder.stop()
        super().request_stop()


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
        **engine_account(writes=(target.parent,)),  # as the account that wrote the parts: it follows no link of theirs as root
    )
    listing.unlink(missing_ok=True)
    if completed.returncode != 0:
        raise UserError("join_failed", _("Could not join the recording's parts: %(reason)s"),
                        {"reason": completed.stderr.replace(f"{target.parent}/", "").strip()[-300:]})
    for part in parts:
        part.unlink(missing_ok=True)
    return target
