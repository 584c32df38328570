"""ffmpeg as the recording engine: each window's audio placed on the wall clock and cut at its instants.

A recording is one or more *runs*. A run is one connection to the source: an ffmpeg decodes it
to PCM, and the agent places every sample on the wall clock by the stream's own clock (the
smallest arrival-minus-position seen, so neither a burst of old audio on connect nor a stall
shifts it). Runs connect ahead of the window; what falls inside it goes, cut at the window's
first and last sample, to the window's file (``WindowFile``): a second ffmpeg that encodes it
into segments named ``part-<first sample's offset in the window>-<n>.<ext>``. A dropped source
ends its run; the next run is placed on the clock again, and the file gets silence of the exact
length in the gap, so each sample sits at its wall-clock place and the file is the window's
asset the moment the window ends. Only a window taken over from another agent has pieces
to join when it closes.

ffmpeg's input comes from the parsed source (recorders.sources), never from its text: a
stream arrives on ffmpeg's standard input from a ``StreamFeeder``, and ffmpeg may open no
protocol and no container but the few each kind needs. A run keeps at most the window's
samples, so a source that sends faster than real time can't fill the disk.
"""

import json
import logging
import math
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from threading import Event, Lock, Thread

import requests
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from ingest.media import MEDIA_FORMATS, probe
from recorders.sources import Source, srt_caller_url
from station import outbound
from station.errors import UserError
from station.processes import STOP_GRACE_SECONDS, EngineProcess, engine_command

logger = logging.getLogger(__name__)

# Encoder settings per output format: (ffmpeg args, file extension).
OUTPUT_PROFILES = {
    "mp3": (["-c:a", "libmp3lame", "-b:a", "320k"], "mp3"),
    "aac": (["-c:a", "aac", "-b:a", "256k"], "aac"),
    "flac": (["-c:a", "flac"], "flac"),
    "wav": (["-c:a", "pcm_s16le"], "wav"),
}
# The encoder also writes its file whole, beside the segments, so a window one agent recorded is that
# file, ready the moment the window ends: segments can't be joined exactly without encoding again
# (MP3 and AAC: each has its own priming and padding; FLAC: each its own stream header), and
# joining WAV segments copies the window (2 s for an hour). RF64 past 4 GB.
WHOLE_FILE_MUXERS = {"mp3": "mp3", "aac": "adts", "flac": "flac", "wav": "wav:rf64=auto"}
SAMPLE_RATE = 44100
FRAME_BYTES = 4  # a sample of 16-bit stereo PCM
PCM_ARGS = ["-f", "s16le", "-ac", "2", "-ar", str(SAMPLE_RATE)]
QUICK_PROBE = ["-probesize", "2048", "-analyzeduration", "0"]  # a stream's first samples come within ~0.3 s
USER_AGENT = "Stationkeeper-recorder/1"
STREAM_CHUNK_BYTES = 1 << 14
CLOCK_SETTLE_SECONDS = 1.0  # a run's clock is trusted once its source has flowed this long
END_GRACE_SECONDS = 1.0  # how long after the window's end its last samples may still arrive
GAP_MIN_SECONDS = 0.03  # uncovered spans shorter than an audio frame are not gaps


def input_args(source: Source) -> list[str]:
    """ffmpeg's input options for a parsed source: each kind opens only what it needs."""
    if source.kind == "stream":  # bytes from the StreamFeeder; a playlist format (HLS…) would open other inputs
        return ["-protocol_whitelist", "pipe", "-format_whitelist", MEDIA_FORMATS, *QUICK_PROBE, "-i", "pipe:0"]
    if source.kind == "srt":
        return ["-protocol_whitelist", "srt", "-format_whitelist", MEDIA_FORMATS, "-i", srt_caller_url(source)]
    if source.kind == "device":
        device_format, _sep, name = source.device.partition(":")
        return ["-f", device_format, "-i", name]
    if source.kind == "tone":  # a generator: paced to real time
        return ["-re", "-f", "lavfi", "-i", f"sine=frequency={int(source.frequency)}:sample_rate=44100"]
    raise ValueError(f"no ffmpeg input for a {source.kind} source")


class StreamFeeder:
    """Fetch a stream through station.outbound and write it into ffmpeg's standard input: one connection.

    A drop ends the feed, and with it the run: the next run connects again and is placed on
    the clock afresh (bytes of a new connection don't continue the old one's timeline). A
    finite source (a file, with a Content-Length) is fed once. A refused address or an HTTP
    error ends the feed with its reason, for the window's error.
    """

    def __init__(self, url: str, sink):
        self.url, self.sink = url, sink
        self.failure = ""
        self.finite = False  # the source said its length: a file, not a live stream
        self.finished = False  # a finite source was fed whole
        self.stopping = Event()
        Thread(target=self._feed, name="stream-feeder", daemon=True).start()

    def _feed(self) -> None:
        try:
            with outbound.guarded_session(user_agent=USER_AGENT) as session:
                self.finished = self._feed_once(session)
        except (requests.RequestException, TimeoutError) as error:
            self.failure = _("%(url)s cannot be reached: %(reason)s") % {"url": self.url, "reason": _connection_problem(error)}
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
        """Feed the connection's bytes; True if the source was finite and is all fed."""
        timeout = (settings.INGEST_CONNECT_TIMEOUT_SECONDS, settings.RECORDER_STARTUP_TIMEOUT_SECONDS)
        with session.get(self.url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise UserError("stream_http_error", _("%(url)s answered HTTP %(status)d."),
                                {"url": self.url, "status": response.status_code})
            self.finite = response.headers.get("Content-Length", "").isdigit()
            # read1 hands over what has arrived: a live stream reaches ffmpeg as it comes, not in full chunks.
            while chunk := response.raw.read1(STREAM_CHUNK_BYTES):
                if self.stopping.is_set():
                    return False
                self.sink.write(chunk)
                self.sink.flush()
            return self.finite

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


class StreamClock:
    """Where a live source's samples sit on the wall clock: the stream's first sample was live at ``anchor``.

    A chunk can't arrive before its last sample was live, so every chunk bounds the anchor from
    above, and the smallest bound is the truest: a burst of old audio on connect, a stall, a slow
    decoder only ever give larger ones.
    """

    def __init__(self):
        self.anchor: float | None = None

    def observe(self, arrival: float, samples_received: int) -> None:
        bound = arrival - samples_received / SAMPLE_RATE
        if self.anchor is None or bound < self.anchor:
            self.anchor = bound


class Encoder(EngineProcess):
    """ffmpeg encoding the PCM it is given into segments of a window's directory; closing its input finishes the file.

    On the way it listens, with ffmpeg's own ``silencedetect`` and ``astats``: ``silent_from`` is
    where (seconds into its input) a silence of RECORDER_DEAD_SOURCE_SECONDS began while it lasts,
    ``silences`` the ones that ended, and at the end ``levels`` holds the peak and RMS levels (dBFS).
    """

    def __init__(self, *, directory: Path, label: str, output_format: str, segment_seconds: int):
        codec_args, extension = OUTPUT_PROFILES[output_format]
        self.silent_from: float | None = None
        self.silences: list[tuple[float, float]] = []
        self.levels: dict[str, float] = {}
        listen = (f"silencedetect=noise={settings.RECORDER_SILENCE_DB}dB:d={settings.RECORDER_DEAD_SOURCE_SECONDS},"
                  "astats=measure_perchannel=none:measure_overall=Peak_level+RMS_level")
        # Each packet is written at once, so a live asset's file grows in real time.
        segments = f"segment_time={segment_seconds}:reset_timestamps=1:segment_format_options=flush_packets=1"
        outputs = (f"[f=segment:{segments}]part-{label}-%03d.{extension}"
                   f"|[f={WHOLE_FILE_MUXERS[output_format]}:flush_packets=1]whole-{label}.{extension}")
        super().__init__(
            ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info", *PCM_ARGS, "-i", "pipe:0",
             "-map", "0:a", "-af", listen, *codec_args, "-f", "tee", outputs],
            stdin=subprocess.PIPE, death_signal=signal.SIGTERM, writes=(directory,),  # SIGTERM: ffmpeg closes its file
            cwd=directory,  # names relative to it: the tee muxer reads no part of the station's paths as options
        )

    def read_stdout(self) -> None:
        self.process.stdout.read()

    def keep(self, line: str) -> None:
        if "[info] " not in line:  # "[error] …", "[mp3 @ 0x…] [warning] …": for the run's last words
            super().keep(line.rsplit("] ", 1)[-1])
            return
        text = line.split("[info] ", 1)[1]
        if "silence_start: " in text:
            self.silent_from = float(text.rsplit("silence_start: ", 1)[1])
        elif "silence_end: " in text and self.silent_from is not None:
            self.silences.append((self.silent_from, float(text.split("silence_end: ", 1)[1].split(" ")[0])))
            self.silent_from = None
        elif "Peak level dB: " in text or "RMS level dB: " in text:
            name, _sep, value = text.rpartition(": ")
            self.levels["peak_db" if "Peak" in name else "rms_db"] = float(value)

    def finish(self) -> None:
        """Close its input and wait for the file to be finished (killed if it hangs)."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class WindowFile:
    """An agent's file of a window: one encoder from its first sample to the window's end, fed by the agent's runs.

    A run writes the samples it placed; where none came (the source dropped, or was not reached at
    the window's start) the file gets silence of the exact length, so every sample sits at its
    wall-clock place and a window with gaps is ready at its end as soon as one without. Its notes
    beside it (``levels-<label>.json``) say where those silences are, rewritten as each opens (running
    to the file's end) and as it closes, so the window's gaps are known even if the agent dies.

    An agent that takes a window over from another starts its file with the ``earlier`` agents'
    files, decoded on a thread of its own (what its runs write meanwhile waits in memory), so the
    window is again one file when it ends; theirs are removed once taken in. ``from_start``
    False: the file starts at its first sample (as it does after its encoder died).

    Its agent keeps ``held_until`` at the wall time its lease on the window surely lasts: past it
    (the agent was frozen, or cut off from the database) nothing is written, since another agent
    may hold the window; ``drop`` ends it without a word more once that is known.
    """

    def __init__(self, *, directory: Path, output_format: str, segment_seconds: int, window: tuple[float, float],
                 from_start: bool = True, earlier: list["Piece"] = ()):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.output_format, self.segment_seconds = directory, output_format, segment_seconds
        self.extension = OUTPUT_PROFILES[output_format][1]
        self.window_start = window[0]
        self.window_samples = round((window[1] - window[0]) * SAMPLE_RATE)
        self.from_start = from_start
        self.encoder: Encoder | None = None
        self.label = ""  # its files' names: its first sample's offset, and a suffix if another file began there
        self.offset: int | None = None  # the window sample its first sample is
        self.written = 0  # samples, its silences included
        self.gaps: list[list[int]] = []  # [first, end) window samples it holds as silence: no audio came
        self.finished = False
        self.held_until = math.inf
        self.dropped = False  # another agent holds the window: its notes are left as they were
        self.last_words = ""  # a dead encoder's
        self.lock = Lock()  # the run writing, and the agent's loop filling a gap or finishing
        self.pending: list[bytes] | None = None  # what was written while the earlier files are taken in
        self.taking_in: Thread | None = None
        if earlier:
            self._open(0)
            self.written = max(piece.end for piece in earlier)
            self.gaps = [list(gap) for gap in gaps_in(earlier, self.written)]
            self.pending = []
            self._write_notes(finished=False)
            self.taking_in = Thread(target=self._take_in, args=(list(earlier),), name="take-in", daemon=True)
            self.taking_in.start()

    @property
    def end(self) -> int | None:
        """The window sample its next one is."""
        return None if self.offset is None else self.offset + self.written

    @property
    def full(self) -> bool:
        return self.offset is not None and self.end >= self.window_samples

    @property
    def recorded_seconds(self) -> float:
        return self.written / SAMPLE_RATE

    @property
    def silent_since(self) -> float | None:
        """The wall time from which it has been silent, while a silence of the dead-source length lasts."""
        if self.encoder is None or self.encoder.silent_from is None:
            return None
        return self.window_start + self.offset / SAMPLE_RATE + self.encoder.silent_from

    def parts(self) -> list[Path]:
        return [] if self.offset is None else sorted(self.directory.glob(f"part-{self.label}-*.{self.extension}"))

    def write(self, at: int, pcm: bytes) -> int | None:
        """Samples decoded for window sample ``at`` on, after silence back to where the file ends; what falls before
        that (written already) or after the window is left out. Returns where its first written sample sits.

        Raises OSError if the encoder died (the next write starts a new file)."""
        with self.lock:
            first = max(at, 0, self.end or 0)
            last = min(at + len(pcm) // FRAME_BYTES, self.window_samples)
            if first >= last or self.finished or time.time() > self.held_until:
                return None
            if self.encoder is None:
                self._open(0 if self.from_start else first)
            self._silence_until(first)
            closing_a_gap = bool(self.gaps) and self.gaps[-1][1] == self.end
            self._put(pcm[(first - at) * FRAME_BYTES:(last - at) * FRAME_BYTES])
            if closing_a_gap:
                self._write_notes(finished=False)  # its end is known now
            return first

    def pad_until(self, sample: int) -> None:
        """Silence up to ``sample`` while no run writes, so a long gap isn't all encoded at once when the source returns."""
        with self.lock:
            if self.encoder is not None and not self.finished and time.time() <= self.held_until:
                self._silence_until(min(sample, self.window_samples))

    def cut(self, at: float) -> None:
        """End the window at ``at`` (epoch seconds; a cancel): nothing after it is written."""
        self.window_samples = min(self.window_samples, max(0, round((at - self.window_start) * SAMPLE_RATE)))

    def finish(self, *, to_window_end: bool = True) -> None:
        """Finish the file, silent to the window's end where the source didn't come back (``to_window_end``: not when
        another agent goes on with the window)."""
        if self.taking_in is not None:
            self.taking_in.join()
        with self.lock:
            if self.encoder is not None and not self.finished and to_window_end:
                self._silence_until(self.window_samples)
            self.finished = True
            self._close()

    def drop(self) -> None:
        """End it at once, with no trailer and no notes: another agent holds the window now."""
        with self.lock:
            self.finished = self.dropped = True
            if self.encoder is not None:
                self.encoder.process.kill()
                self.encoder.process.wait()
                self.encoder = None

    def _open(self, offset: int) -> None:
        taken = {_label(path) for path in self.directory.iterdir()}
        self.label = next(label for label in (f"{offset:012d}", *(f"{offset:012d}.{n}" for n in range(1, 1000)))
                          if label not in taken)
        self.encoder = Encoder(directory=self.directory, label=self.label, output_format=self.output_format,
                               segment_seconds=self.segment_seconds)
        self.offset, self.written, self.gaps = offset, 0, []

    def _put(self, pcm: bytes) -> None:
        if self.pending is not None:
            self.pending.append(pcm)
        else:
            try:
                self.encoder.process.stdin.write(pcm)
            except OSError:
                self._encoder_died()
                raise
        self.written += len(pcm) // FRAME_BYTES

    def _encoder_died(self) -> None:
        self._close()
        self.pending = None
        self.from_start = False  # what it wrote stays; the next write starts a file of its own

    def _take_in(self, earlier: list["Piece"]) -> None:
        """Decode the earlier agents' files into this one, each at its place with silence between, then what the
        runs wrote meanwhile; then remove theirs."""
        stdin = self.encoder.process.stdin
        try:
            cursor = 0
            for piece in earlier:
                for chunk in _silence(piece.start - cursor):
                    stdin.write(chunk)
                cursor = max(cursor, piece.start)
                skip, want = (cursor - piece.start) * FRAME_BYTES, max(0, piece.end - cursor) * FRAME_BYTES
                for chunk in _decoded(piece.files, self.directory):
                    chunk, skip = chunk[skip:], max(0, skip - len(chunk))
                    stdin.write(chunk[:want])
                    want -= len(chunk[:want])
                    if want == 0:
                        break
                for chunk in _silence(want // FRAME_BYTES):  # it decoded shorter than it said
                    stdin.write(chunk)
                cursor = max(cursor, piece.end)
            with self.lock:
                for chunk in self.pending:
                    stdin.write(chunk)
                self.pending = None
        except OSError:
            logger.warning("%s: the encoder died taking the earlier files in", self.directory)
            with self.lock:
                self._encoder_died()
            return
        for piece in earlier:
            _remove_run_files(self.directory, piece.label)

    def _silence_until(self, sample: int) -> None:
        first = self.end
        if sample <= first:
            return
        for chunk in _silence(sample - first):
            self._put(chunk)
        if self.gaps and self.gaps[-1][1] == first:
            self.gaps[-1][1] = sample  # the open gap grows: its notes say it runs to the file's end already
        else:
            self.gaps.append([first, sample])
            self._write_notes(finished=False)

    def _close(self) -> None:
        if self.encoder is None:
            return
        self.encoder.finish()
        self.last_words = (self.encoder.last_lines(1) or [""])[0]
        self._write_notes(finished=True)
        self.encoder = None

    def _write_notes(self, *, finished: bool) -> None:
        """Where it holds silence for want of audio, and, once finished, what the encoder heard, for the window's summary."""
        if self.dropped:
            return
        heard = self.encoder
        at = self.offset / SAMPLE_RATE
        silences = [*heard.silences, *([(heard.silent_from, self.recorded_seconds)] if heard.silent_from is not None else [])]
        (self.directory / f"levels-{self.label}.json").write_text(json.dumps({
            # what it was handed is in its file only if it finished the file (killed, it lost what was in the pipe)
            "samples": self.written if finished and heard.process.returncode == 0 else None,
            # a gap still open runs to the file's end (null): the notes needn't be written again as it grows
            "gaps": [[first, None if end == self.end and not finished else end] for first, end in self.gaps],
            **{name: value for name, value in heard.levels.items() if math.isfinite(value)},  # digital silence: -inf
            "silences": [[at + start, at + end] for start, end in silences],
        }))


class CaptureRun(EngineProcess):
    """One connection to a source for a window: ffmpeg decodes it; its samples go, on the clock, to the window's file.

    Samples are placed by the run's ``StreamClock``; the first written is the first at or after the
    window's start (or the first to arrive, when the source came late), the last is the window's
    last. A finite source (a file) is not live: its first sample is placed at the window's start,
    or when it arrived.
    """

    def __init__(self, *, source: Source, file: WindowFile, on_first_sample=None):
        self.file = file
        self.window_start = file.window_start
        self.clock = StreamClock()
        self.on_first_sample = on_first_sample  # called with the wall time of the first sample written, once
        self.first_written: int | None = None  # the window sample of the run's first written sample
        self.reached: int | None = None  # the window sample its audio reaches
        self.started_at = time.time()
        self.ending = Event()  # stop at the window's end, or now
        self.feeder = None
        super().__init__(
            ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", *input_args(source),
             "-vn", *PCM_ARGS, "-flush_packets", "1", "pipe:1"],
            stdin=subprocess.PIPE if source.kind == "stream" else subprocess.DEVNULL,
            death_signal=signal.SIGKILL, writes=(file.directory,),  # it writes no file: nothing to finish
        )
        if source.kind == "stream":
            self.feeder = StreamFeeder(source.url, self.process.stdin)

    # -- the pump: decoded samples onto the window ----------------------------------------------

    def read_stdout(self) -> None:
        received, remainder, settling, began = 0, b"", [], None
        try:
            while not self.ending.is_set() and (chunk := self.process.stdout.read1(1 << 16)):
                arrival = time.time()
                began = began or arrival
                chunk = remainder + chunk
                usable = len(chunk) // FRAME_BYTES * FRAME_BYTES
                chunk, remainder = chunk[:usable], chunk[usable:]
                settling.append((received, chunk))
                received += usable // FRAME_BYTES
                if self.feeder is not None and self.feeder.finite:
                    if self.clock.anchor is None:
                        self.clock.anchor = max(self.window_start, arrival)
                else:
                    self.clock.observe(arrival, received)
                    if arrival - began < CLOCK_SETTLE_SECONDS:
                        continue  # what ffmpeg decoded while probing comes at once: its first chunks can't set the clock
                while settling:
                    if not self._place(*settling.pop(0)):
                        return
        finally:
            self._end()

    def _place(self, first: int, samples: bytes) -> bool:
        """Write what of ``samples`` (decoded from position ``first``) falls inside the window; False once it is full."""
        at = round((self.clock.anchor + first / SAMPLE_RATE - self.window_start) * SAMPLE_RATE)
        if self.first_written is None:
            if at + len(samples) // FRAME_BYTES <= 0:
                return True  # before the window: it only set the clock
            wait = self.window_start + max(at, 0) / SAMPLE_RATE - time.time()
            if wait > 0:  # a file's samples come before their time; a live source's never do
                time.sleep(wait)
        try:
            # The clock only moves earlier: samples then map to places already written, and are left out.
            placed = self.file.write(at, samples)
        except OSError:
            return False  # the encoder died; the run ends and says why
        if placed is not None:
            if self.first_written is None:
                self.first_written = placed
                if self.on_first_sample is not None:
                    self.on_first_sample(self.window_start + placed / SAMPLE_RATE)
            self.reached = self.file.end
        return not self.file.full

    def _end(self) -> None:
        """The window is full, or the source ended, or we stop: let the decoder go (the file goes on)."""
        if self.feeder is not None:
            self.feeder.stop()
        if self.process.poll() is None:
            self.process.kill()
        self.ending.set()

    # -- what the supervisor asks -----------------------------------------------------------------

    def alive(self) -> bool:
        return self.reader.is_alive()

    def has_output(self) -> bool:
        """The run wrote a sample of the window."""
        return self.first_written is not None

    @property
    def window_full(self) -> bool:
        return self.file.full

    @property
    def written_until(self) -> float | None:
        """The wall time the run's audio reaches, if it wrote any."""
        return None if self.reached is None else self.window_start + self.reached / SAMPLE_RATE

    @property
    def source_ended(self) -> bool:
        """A finite source was recorded to its end: nothing more will come from it in this window."""
        return self.feeder is not None and self.feeder.finished

    def failure_reason(self) -> str:
        """Why the run ended: the feed's refusal or HTTP error, else ffmpeg's own last words."""
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self.feeder is not None and self.feeder.failure:
            return self.feeder.failure
        time.sleep(0.05)  # let the reading thread take the last lines
        lines = self.last_lines(1) or ([self.file.last_words] if self.file.last_words else [])
        if lines:  # its own files are named as they are, without the station's directories around them
            return lines[0].replace(f"{self.file.directory}/", "")
        return _("The source ended.")

    def stop(self) -> None:
        """End it, its samples up to the cut waited for a grace (the file is finished by whoever holds it)."""
        cut_at = self.window_start + self.file.window_samples / SAMPLE_RATE
        self.reader.join(timeout=max(0.0, min(cut_at, time.time()) + END_GRACE_SECONDS - time.time()))
        self.kill()  # no more output: the pump's read ends
        self.reader.join(timeout=STOP_GRACE_SECONDS + 1)

    def kill(self) -> None:
        """End it now, without waiting for its last samples: its window is another agent's."""
        self.ending.set()
        if self.process.poll() is None:
            self.process.kill()


def recording_parts(directory: Path) -> list[Path]:
    """Every non-empty part in a recording's directory, in time order."""
    if not directory.exists():
        return []
    return sorted(p for p in directory.glob("part-*") if p.is_file() and p.stat().st_size > 0)


def _label(path: Path) -> str:
    """Which window file a file of a recording's directory belongs to: ``part-<label>-NNN.ext``, ``whole-<label>.ext``,
    ``levels-<label>.json`` (the label: the first sample's offset, 12 digits, and ``.N`` for a later file there)."""
    body = path.name.partition("-")[2]
    return body.split("-")[0] if path.name.startswith("part-") else body.rsplit(".", 1)[0]


def _silence(samples: int):
    second = bytes(FRAME_BYTES * SAMPLE_RATE)
    while samples > 0:
        yield second[:min(samples, SAMPLE_RATE) * FRAME_BYTES]
        samples -= SAMPLE_RATE


def _decoded(files: list[Path], directory: Path):
    """The files' audio as the window's PCM, in chunks."""
    for path in files:
        decoder = subprocess.Popen(
            engine_command(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", path.name, *PCM_ARGS, "pipe:1"],
                           writes=(directory,)),
            cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            while chunk := decoder.stdout.read(1 << 16):
                yield chunk
        finally:
            decoder.kill()
            decoder.wait()


@dataclass(frozen=True)
class Piece:
    """An agent's file of a window, as its directory holds it."""

    label: str
    start: int  # window samples
    end: int
    files: list[Path]  # its whole file where it wrote one that reads, else its segments
    gaps: list[tuple[int, int]]  # the stretches it holds as silence because no audio came


def recorded_pieces(directory: Path) -> list[Piece]:
    """Each agent file's place in the window, files and gaps, in time order; lengths as decoded from the files.

    Its length is what it wrote, as it noted when it finished (a lossy file's duration as probed
    counts its encoder's priming and padding); such a file is not read back, since its encoder
    closed it having been handed it all. Any other (its agent or encoder died) is probed, for what
    of it reads and how long that is.
    """
    found_parts: dict[str, list[Path]] = {}
    for part in recording_parts(directory):
        found_parts.setdefault(_label(part), []).append(part)
    found = []
    for label, parts in sorted(found_parts.items()):
        offset = int(label.split(".")[0])
        notes = _notes(directory, label)
        whole = [path for path in directory.glob(f"whole-{label}.*") if _label(path) == label and path.stat().st_size > 0]
        for files in (whole, parts):
            readable, samples = (files, notes["samples"]) if notes.get("samples") is not None else _probed_length(files)
            if readable:
                end = offset + samples
                found.append(Piece(label, offset, end, readable,
                                   [(first, end if last is None else min(last, end)) for first, last in notes.get("gaps", [])]))
                break
    return sorted(found, key=lambda piece: (piece.start, piece.label))


def _probed_length(files: list[Path]) -> tuple[list[Path], int]:
    """The files ffprobe can read, and their length in samples."""
    readable, samples = [], 0
    for path in files:
        try:
            samples += round(probe(path).duration_seconds * SAMPLE_RATE)
            readable.append(path)
        except UserError:
            pass  # a file cut off before its first frame by a crash holds nothing we can count on
    return readable, samples


def _notes(directory: Path, label: str) -> dict:
    try:
        return json.loads((directory / f"levels-{label}.json").read_text())
    except (OSError, ValueError):
        return {}


def audio_spans(pieces: list[Piece]) -> list[tuple[int, int]]:
    """The stretches of the window (samples) that hold the source's audio, in time order."""
    spans = []
    for piece in pieces:
        cursor = piece.start
        for first, last in sorted(piece.gaps):
            if first > cursor:
                spans.append((cursor, first))
            cursor = max(cursor, last)
        if piece.end > cursor:
            spans.append((cursor, piece.end))
    return sorted(spans)


def levels_summary(directory: Path, window_start) -> dict:
    """The window's peak and RMS levels (dBFS) and its silences (UTC instants), from what each run's encoder heard."""
    runs = [json.loads(path.read_text()) for path in sorted(directory.glob("levels-*.json"))]
    heard = [run for run in runs if run["samples"]]  # a run whose encoder was killed tells nothing sure
    if not heard:
        return {}
    peaks = [run["peak_db"] for run in heard if "peak_db" in run]
    power = sum(run["samples"] * 10 ** (run["rms_db"] / 10) for run in heard if "rms_db" in run)
    samples = sum(run["samples"] for run in heard)
    silences = sorted(silence for run in heard for silence in run["silences"])
    return {
        "peak_db": round(max(peaks), 1) if peaks else None,
        "rms_db": round(10 * math.log10(power / samples), 1) if power > 0 else None,  # None: nothing but silence
        "silent_seconds": round(sum(end - start for start, end in silences), 2),
        "silences": [[(window_start + timedelta(seconds=start)).isoformat(), (window_start + timedelta(seconds=end)).isoformat()]
                     for start, end in silences],
    }


def gaps_in(pieces: list[Piece], window_samples: int) -> list[tuple[int, int]]:
    """The window's stretches (in samples) without the source's audio, each at least an audio frame long."""
    gaps, covered = [], 0
    for start, end in [*audio_spans(pieces), (window_samples, window_samples)]:
        if start - covered >= GAP_MIN_SECONDS * SAMPLE_RATE:
            gaps.append((covered, min(start, window_samples)))
        covered = max(covered, end)
    return gaps


def _join_unchanged(parts: list[Path], target: Path) -> Path:
    if len(parts) == 1:
        parts[0].replace(target)
        return target
    listing = target.with_suffix(".txt")
    listing.write_text("".join(f"file '{part.name}'\n" for part in parts))
    try:
        _ffmpeg_in(target.parent, ["-f", "concat", "-safe", "0", "-i", listing.name, "-c", "copy", target.name])
    finally:
        listing.unlink(missing_ok=True)
    return target


def _ffmpeg_in(directory: Path, args: list[str]) -> None:
    """Run ffmpeg in a recording's directory, as the account that wrote its parts (it follows no link of theirs as root)."""
    command = engine_command(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], writes=(directory,))
    completed = subprocess.run(command, capture_output=True, text=True, timeout=3600, cwd=directory)
    if completed.returncode != 0:
        raise UserError("join_failed", _("Could not join the recording's parts: %(reason)s"),
                        {"reason": completed.stderr.replace(f"{directory}/", "").strip()[-300:]})


def assemble(pieces: list[Piece], target: Path, *, window_samples: int, output_format: str) -> Path:
    """Join the pieces into ``target``, each at its place in the window and silence of the exact length between.

    A window one agent recorded (its gaps are silence in its file already) is its whole file, renamed
    (or, if that can't be read, its segments joined without re-encoding: one encoder wrote them, so
    their frames follow on). A window taken over from another agent is
    decoded and encoded once (lossless stays lossless).
    """
    if len(pieces) == 1 and pieces[0].start == 0 and abs(pieces[0].end - window_samples) < GAP_MIN_SECONDS * SAMPLE_RATE:
        _join_unchanged(pieces[0].files, target)
        _remove_run_files(target.parent, "*")
        return target
    inputs, chains, labels, cursor = [], [], [], 0
    pcm = f"aresample={SAMPLE_RATE},aformat=sample_fmts=s16:channel_layouts=stereo"

    def silence(samples: int) -> None:
        label = f"[gap{len(chains)}]"
        chains.append(f"anullsrc=r={SAMPLE_RATE}:cl=stereo,atrim=end_sample={samples},{pcm}{label}")
        labels.append(label)

    for piece in pieces:
        if piece.start > cursor:
            silence(piece.start - cursor)
            cursor = piece.start
        first = len(inputs) // 2
        for part in piece.files:
            inputs.extend(["-i", part.name])
        label = f"[run{len(chains)}]"
        joined = "".join(f"[{index}:a]" for index in range(first, first + len(piece.files)))
        # an overlap with the piece before (an agent taking over): this one goes on where that one ended
        chains.append(f"{joined}concat=n={len(piece.files)}:v=0:a=1,{pcm},atrim=start_sample={cursor - piece.start}{label}")
        labels.append(label)
        cursor = max(cursor, piece.end)
    if cursor < window_samples:
        silence(window_samples - cursor)
    graph = ";".join([*chains, f"{''.join(labels)}concat=n={len(labels)}:v=0:a=1,atrim=end_sample={window_samples}[out]"])
    codec_args, _extension = OUTPUT_PROFILES[output_format]
    _ffmpeg_in(target.parent, [*inputs, "-filter_complex", graph, "-map", "[out]", *codec_args, target.name])
    _remove_run_files(target.parent, "*")
    return target


def _remove_run_files(directory: Path, label: str) -> None:
    """The files of the window file ``label`` (``*``: of them all): its segments, whole file and notes."""
    for path in [*directory.glob("part-*"), *directory.glob("whole-*"), *directory.glob("levels-*")]:
        if label == "*" or _label(path) == label:
            path.unlink(missing_ok=True)
