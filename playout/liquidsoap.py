"""Liquidsoap as the playout engine: one process per channel, driven over its telnet server.

The script the app generates plays a request queue the dispatcher feeds, falls
back to the channel's filler playlist and then to silence (never dead air), and
prints every on-air change as a ``SK_ON_AIR <json>`` line the agent reads.

What reaches the engine from the database crosses three boundaries, each with one function:
- the script: every text goes through ``liq_string`` (Liquidsoap interpolates ``#{…}`` inside
  any string literal, so values are written as a percent-encoded literal that is decoded at run
  time; each output's backend in playout.outputs is handed it), numbers are formatted from
  validated ints and floats;
- request URIs (queue pushes, the filler playlist): ``request_uri``, a local path the node made
  and numeric annotations only; titles stay in the database, never in a URI Liquidsoap parses
  (its ``process:`` protocol runs commands);
- telnet: ``Gateway.command`` sends one line: words without spaces, and a last argument that is
  anything but a control character (the server takes the rest of the line as it is: a file name
  may hold spaces and accents).
"""

import json
import logging
import math
import re
import signal
import socket
import subprocess
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from django.utils.translation import gettext_lazy as _

from ingest.media import MEDIA_FORMATS
from playout.dead_air import DEFAULT_DEAD_AIR_SECONDS, DEFAULT_SILENCE_THRESHOLD
from playout.models import LIVE_MOUNT
from playout.outputs import get_output
from station.errors import UserError
from station.processes import EngineProcess, kill_strays

logger = logging.getLogger(__name__)
ON_AIR_MARK = "SK_ON_AIR "
WEBSTREAM_MARK = "SK_WEBSTREAM "
DEAD_AIR_MARK = "SK_DEAD_AIR "
DEAD_AIR_KEY = "sk_dead_air"  # in a report's metadata: the silence it began with ({"seconds", "moved_on"})
LEVEL_MARK = "SK_LEVEL "
CLOCK_MARK = "SK_CLOCK "
LIVE_MARK = "SK_LIVE "
AIR_RECORDED_MARK = "SK_AIR_RECORDED "
AIR_RECORDERS = ("air_record_a", "air_record_b")  # two, so back-to-back slots each get their own file
LIVE_KEY = "sk_live"  # in a report's metadata: the credential of the presenter on air
LIVE_LOST_KEY = "sk_live_lost"  # in a report's metadata: the grace's silence after that presenter's source dropped
LIVE_CROSSFADE_SECONDS = 0.3
# The live input's buffer: what it holds before it is heard (each source client's packets come unevenly), and at most
# (a client sending faster than real time has the oldest dropped, so the presenter is never heard late). 0.1 s ran dry
# when a busy disk beside the engine held up its source for a moment: 60-120 ms holes in the presenter's voice on air.
LIVE_BUFFER_SECONDS, LIVE_MAX_BUFFER_SECONDS = 0.2, 1.0
# What Liquidsoap logs when an output fails to start (its port taken, say): the output never tries again by itself
# and the engine would play on to nobody, answering its probes; it is killed, and the crash policy takes over.
OUTPUT_FAILED_MARK = "] Error when starting "
# Every track in the engine starts on a frame boundary: the switches hand over between frames, and a file's track
# lasts whole frames (Liquidsoap 2.1's decoders drop a last part frame, cue points included). So an item goes on air
# at the first boundary at or after its slot: frames of 100 samples (2.3 ms; Liquidsoap's default is 40 ms) keep it
# that close, for about one percent of a core more than 20 ms frames.
SAMPLE_RATE = 44100
FRAME_SAMPLES = 100
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE


# The parts of Liquidsoap's standard library a channel's script uses, in the library's own order. The engine
# starts without the rest (--no-stdlib): type-checking the whole library costs about 2 s of CPU at every start,
# which made a cold start (a restart, a failover) 2.2 s to the telnet server's answer instead of 0.4 s. What stays
# out of the engine includes the request protocols that run commands (process:, say:) and the video and GStreamer code.
STDLIB_PARTS = ("error", "null", "ref", "list", "math", "getter", "predicate", "settings", "log", "thread", "process",
                "string", "json", "file", "switches", "utils", "clock", "metadata", "native", "request", "playlist",
                "source", "audio", "http_codes", "http", "server")
ENGINE_COMMAND = ("liquidsoap", "--no-stdlib")
_TELNET_WORD = re.compile(r"[\x21-\x7e]+")  # printable ASCII without spaces: the server splits on them


def liq_string(value) -> str:
    """A Liquidsoap expression for ``value`` that no text can break out of or interpolate into.

    The literal holds only letters, digits, ``_.-~`` and ``%XX``: no quote, backslash, ``#``,
    ``{`` or newline, whatever ``value`` holds; ``url.decode`` gives the text back when the script runs.
    """
    return f'url.decode("{quote(str(value), safe="")}")'


def output_clause(output_type: str, settings: dict, source: str, *, file_path: Path | None = None) -> str:
    """Return the Liquidsoap output for a channel's cleaned settings, as its backend makes it (playout.outputs).

    ``file_path`` is where a file output writes (the station names it).
    """
    return get_output(output_type).liquidsoap(settings, source, liq_string, file_path=file_path)


@dataclass(frozen=True)
class LiveInput:
    """A channel's input for presenters (playout.presenters): its port, how long a dropped source is waited for, and
    where the engine asks whether a connection may come in (its agent's ``LiveDoor``)."""

    port: int
    grace_seconds: float
    admit_url: str


def live_clause(live: LiveInput | None) -> str:
    """The live layer over the schedule: ``onair``, the presenter's source when it holds the air, else ``main``."""
    if live is None:
        return "onair = main\nlive_on_air = ref(\"off\")\ntell_on_air = ref(fun (_) -> ())\n"
    return f"""\
# Live shows (playout.presenters). A presenter's source client connects to the live input; the engine asks its agent
# whether its credentials are good now (the agent checks them in the database and logs what it refuses) and learns
# the slot they are for: the air is the presenter's from its start to its end, whenever they connected, and their
# connection is let go at the end of the show's margin. One source at a time. A source that drops (or stalls) is
# waited for the grace time, in silence, then the schedule or the filler comes back; a reconnect takes over again.
# Stream decoders by content type: MPEG audio by mad, which decodes frame by frame, where ffmpeg first reads a second
# and a half of the stream to probe it (the presenter would be heard that much late). Files are chosen by extension.
settings.decoder.mime_types.ffmpeg.set(list.filter(fun (m) -> m != "audio/mpeg" and m != "audio/MPA",
                                                   settings.decoder.mime_types.ffmpeg()))
live_admitted = ref("")  # the agent's answer to the connection being let in
live_credential = ref("")
live_from = ref(9999999999.)
live_until = ref(0.)
live_connected_until = ref(0.)
live_connected = ref(false)
live_grace = {float(live.grace_seconds)!r}
def live_admit(login) =
  if !live_connected then
    print({liq_string(LIVE_MARK)} ^ json.stringify(compact=true, ["busy", login.address]))
    false
  else
    reply = http.post(timeout_ms=3000, {liq_string(live.admit_url)},
                      data=json.stringify(compact=true, [("user", login.user), ("password", login.password),
                                                         ("address", login.address)]))
    live_admitted := if reply.status_code == 200 then reply else "" end
    reply.status_code == 200
  end
end
def live_connect(_) =
  grant = string.split(separator=" ", !live_admitted)
  live_credential := list.nth(grant, 0)
  live_from := float_of_string(list.nth(grant, 1))
  live_until := float_of_string(list.nth(grant, 2))
  live_connected_until := float_of_string(list.nth(grant, 3))
  live_connected := true
  print({liq_string(LIVE_MARK)} ^ json.stringify(compact=true, ["connected", !live_credential]))
end
def live_disconnect() =
  live_connected := false
  print({liq_string(LIVE_MARK)} ^ json.stringify(compact=true, ["disconnected", !live_credential]))
end
live_input = input.harbor(id="live", port={int(live.port)}, buffer={LIVE_BUFFER_SECONDS!r},
                          max={LIVE_MAX_BUFFER_SECONDS!r}, auth=live_admit, on_connect=live_connect,
                          on_disconnect=live_disconnect, {liq_string(LIVE_MOUNT)})
# Its level, every second while a presenter is connected, on air or not (they check their sound before the slot):
# the dashboards show it. Metered always, so it is read whatever is on air.
live = rms(id="live_level", duration=0.2, live_input)
output.dummy(id="live_meter", fallible=true, live)
thread.run(every=1., fun () -> if !live_connected then
  print({liq_string(LIVE_MARK)} ^ json.stringify(compact=true, ["level", string_of_float(dB_of_lin(live.rms()))]))
end)
def live_kick(_) =
  live_until := 0.
  live_connected_until := 0.
  live_input.disconnect()
  "OK"
end
server.register(usage="live_kick", "live_kick", live_kick)
live_heard = ref(0.)  # when the source was last ready to be heard
live_lost_told = ref(true)
def live_in_slot(t) =
  t >= !live_from and t < !live_until
end
def watch_live() =
  now = time()
  if live.is_ready() then
    live_heard := now
    live_lost_told := false
  elsif not !live_lost_told and now - !live_heard >= live_grace then
    live_lost_told := true
    if live_in_slot(!live_heard) then
      print({liq_string(LIVE_MARK)} ^ json.stringify(compact=true, ["lost", !live_credential]))
    end
  end
  if !live_connected and now >= !live_connected_until then live_input.disconnect() end
end
thread.run(every=0.02, watch_live)
def live_holds() =
  now = time()
  live_in_slot(now) and (live.is_ready() or now - !live_heard < live_grace)
end
# The gate reports what the live layer puts on air, on the frame it does: the presenter, or the grace's silence.
live_on_air = ref("off")
tell_on_air = ref(fun (_) -> ())  # report, once it is defined below
def live_gate_open() =
  holds = live_holds()
  state = if not holds then "off" elsif live.is_ready() then "on" else "gap" end
  if state != !live_on_air then
    live_on_air := state
    tell = !tell_on_air
    if state != "off" then
      tell([(if state == "on" then {liq_string(LIVE_KEY)} else {liq_string(LIVE_LOST_KEY)} end, !live_credential)])
    end
  end
  holds
end
live_gate = switch(id="live_gate", track_sensitive=false,
                   [(live_gate_open, fallback(id="live_or_gap", track_sensitive=false, [live, blank(id="live_gap")]))])
# A short crossfade both ways: the new source rises while the old one fades and ends.
def crossfade(old, new) =
  began = time()
  def rising() = min(1., (time() - began) / {LIVE_CROSSFADE_SECONDS!r}) end
  old = switch(track_sensitive=false, [({{time() - began < {LIVE_CROSSFADE_SECONDS!r}}}, amplify(fun () -> 1. - rising(), old))])
  add(normalize=false, [old, amplify(rising, new)])
end
onair = fallback(id="onair", track_sensitive=false, replay_metadata=true, transitions=[crossfade, crossfade],
                 [live_gate, main])
"""


def render_script(*, output: str, telnet_port: int, filler_playlist: Path | None,
                  dead_air_seconds: float = DEFAULT_DEAD_AIR_SECONDS,
                  silence_threshold_dbfs: float = DEFAULT_SILENCE_THRESHOLD, live: LiveInput | None = None) -> str:
    """The channel's script around its output clause (``output_clause``), watching its output for dead air
    (playout.dead_air), with a live input for presenters if it has one (``live_clause``)."""
    filler = (
        f'filler = at_its_gain(playlist(id="filler", mode="normal", reload_mode="watch", '
        f'{liq_string(filler_playlist)}))\n'
        if filler_playlist else 'filler = blank(id="filler_none")\n'
    )
    stdlib = "".join(f"%include <{part}.liq>\n" for part in STDLIB_PARTS)
    return f"""\
{stdlib}set_settings_ref(settings)
settings.init.allow_root.set(true)
settings.log.stdout.set(true)
settings.log.file.set(false)
settings.log.level.set(3)
settings.server.telnet.set(true)
settings.server.telnet.bind_addr.set("127.0.0.1")
settings.server.telnet.port.set({int(telnet_port)})
settings.frame.audio.samplerate.set({SAMPLE_RATE})
settings.frame.duration.set({FRAME_SECONDS!r})
settings.frame.video.framerate.set({SAMPLE_RATE // FRAME_SAMPLES})  # a frame holds whole video frames too

# The dispatcher queues the next item ahead of its slot (resolved and ready) and sets next_at, a position in the
# stream (seconds: frames computed × their length), half a frame into the frame before the item's: the switch hands
# over between frames, after the frame that finds the gate open. The gate reads the stream's position, not the wall
# clock, so a frame computed late (a busy machine) still opens it on the same frame. A started item is kept to its
# end. Items are cut by their liq_cue_in/liq_cue_out annotations.
def stream_position_setting(name) =
  position = ref(1000000000000.)
  def set(value) =
    position := float_of_string(value)
    "OK"
  end
  server.register(usage=name ^ " <stream seconds>", name, set)
  position
end
next_at = stream_position_setting("next_at")
stream_position = ref(fun () -> 0.)  # the output's position, once it is defined below
def stream_now() =
  position = !stream_position
  position()
end
# Each item at the channel's loudness target: the dispatcher annotates its gain (playout.loudness). The switches
# replay a source's last metadata when they return to it, and amplify would read the previous item's gain from
# that replay as well as the next item's own: the gain is taken out of the metadata once applied.
def at_its_gain(s) =
  metadata.map(strip=true, insert_missing=false, fun (_) -> [("liq_amplify", "")],
               amplify(override="liq_amplify", 1., s))
end
# An item whose slot was cut short after it was queued (its show shortened on air): the dispatcher names the
# stream position of its new end, as it does a start, and the queue ends the item's track on the frame that gets there.
cut_at = stream_position_setting("cut_at")
item_requests = request.queue(id="queue", prefetch=2)
def cut_when_due() =
  if stream_now() >= !cut_at then
    cut_at := 1000000000000.
    item_requests.skip()
  end
end
queue = at_its_gain(cue_cut(source.on_frame(item_requests, cut_when_due)))
timed = switch(id="timed", track_sensitive=true, [({{stream_now() >= !next_at}}, queue)])
# A webstream item: the dispatcher names the stream and its window ahead of the slot, the input
# connects then, and the gate keeps it on air for its window; the input stops after it. It reads the
# agent's relay (playout.relay) as audio only: a playlist format (HLS, DASH…) would fetch other URLs.
webstream_item = ref("")
webstream_from = ref(9999999999.)
webstream_until = ref(0.)
webstream = input.http(id="webstream", start=false, max_buffer=10.,
                       string_args=[("protocol_whitelist", {liq_string("http,tcp")}),
                                    ("format_whitelist", {liq_string(MEDIA_FORMATS)})],
                       on_connect=fun (_) -> print({liq_string(WEBSTREAM_MARK + "connected")}),
                       on_disconnect=fun () -> print({liq_string(WEBSTREAM_MARK + "disconnected")}), "")
def arm_webstream(value) =
  parts = string.split(separator=" ", value)
  webstream_item := list.nth(parts, 0)
  webstream_from := float_of_string(list.nth(parts, 1))
  webstream_until := float_of_string(list.nth(parts, 2))
  webstream.set_url(list.nth(parts, 3))
  webstream.start()
  "OK"
end
server.register(usage="webstream <item> <from epoch> <until epoch> <url>", "webstream", arm_webstream)
def webstream_window_open() =
  time() >= !webstream_from and time() < !webstream_until
end
thread.run(every=0.5, fun () -> if time() >= !webstream_until and webstream.is_started() then webstream.stop() end)
webstream_gate = switch(id="webstream_gate", track_sensitive=false, [(webstream_window_open, webstream)])
{filler}silence = blank(id="silence")
# replay_metadata: returning to the filler mid-track reports it again, so the as-run log sees it.
main = fallback(id="main", track_sensitive=false, replay_metadata=true, [timed, webstream_gate, filler, silence])
{live_clause(live)}
# Operators pause (silence on purpose) and skip (take the item on air off) over telnet.
paused = ref(false)
def set_paused(value) =
  paused := (value == "true")
  "OK"
end
server.register(usage="paused true|false", "paused", set_paused)
def skip_current(_) =
  main.skip()
  "OK"
end
server.register(usage="skip", "skip", skip_current)
pause_silence = blank(id="paused")
air = rms(id="air_level", duration=0.2,
          switch(id="air", track_sensitive=false, replay_metadata=true, [({{!paused}}, pause_silence), ({{true}}, onair)]))
stream_position := fun () -> source.time(air)
# The stream's position beside the wall clock, ten times a second, read between frames: the agent places the
# stream's frames on the clock by these (playout.liquidsoap.StreamClock), to start an item on its frame.
thread.run(every=0.1, fun () -> print({liq_string(CLOCK_MARK)} ^ json.stringify(compact=true, (int_of_float(time() * 1000000.), int_of_float(source.time(air) * 1000000.)))))

# Dead air (playout.dead_air): the output below the threshold for the limit, within one track, while an item, a
# webstream or the filler is on air. If the filler can play, the engine moves on at once: a webstream's window
# closes, anything else is skipped, and the fallback brings the filler (or its next file) on air. Otherwise what is
# on air plays on, and the silence is reported once. It prints when, how long the silence lasted, and which.
dead_air_seconds = ref({float(dead_air_seconds)!r})
silence_below = ref(lin_of_dB({float(silence_threshold_dbfs)!r}))
def set_dead_air(value) =
  limits = string.split(separator=" ", value)
  dead_air_seconds := float_of_string(list.nth(limits, 0))
  silence_below := lin_of_dB(float_of_string(list.nth(limits, 1)))
  "OK"
end
server.register(usage="dead_air <seconds> <threshold dBFS>", "dead_air", set_dead_air)
watched = ref(false)  # set by report: something is on air that should be heard
quiet = ref(false)  # media marked quiet on purpose
silent_since = ref(time())
reported = ref(false)  # this silence, which nothing could replace
def webstream_on_air() =
  webstream_window_open() and webstream.is_ready()
end
def watch_dead_air() =
  now = time()
  if !paused or not !watched or !quiet or air.rms() >= !silence_below then
    silent_since := now
    reported := false
  elsif not !reported and now - !silent_since >= !dead_air_seconds then
    moves_on = {"true" if filler_playlist else "false"} and filler.is_ready()
    print({liq_string(DEAD_AIR_MARK)} ^ json.stringify(compact=true, (int_of_float(now * 1000000.), int_of_float(source.time(air) * 1000000.), now - !silent_since, moves_on)))
    if moves_on then
      silent_since := now  # the filler's next file, if this one is silent too, gets the limit again
      if webstream_on_air() then webstream_until := now else main.skip() end
    else
      reported := true
    end
  end
end
thread.run(every=0.1, watch_dead_air)
thread.run(every=1., fun () -> print({liq_string(LEVEL_MARK)} ^ string_of_float(dB_of_lin(air.rms()))))

# Stamped with the wall clock and the stream position of the frame the track starts in, in
# microseconds (JSON floats keep only two decimals); the agent places it on the stream's timeline.
def report(m)
  m = if not list.assoc.mem("sk_item", m) and !live_on_air == "off" and webstream_on_air()
      then list.append([("sk_item", !webstream_item)], m) else m end
  watched := list.assoc.mem("sk_item", m) or list.assoc.mem("sk_asset", m)
  quiet := list.assoc(default="0", "sk_quiet", m) == "1"
  silent_since := time()  # each track gets the whole limit: a quiet opening after a silent ending is no dead air
  print({liq_string(ON_AIR_MARK)} ^ json.stringify(compact=true, (int_of_float(time() * 1000000.), int_of_float(source.time(air) * 1000000.), m)))
end
tell_on_air := report
air.on_track(fun (m) -> if !live_on_air == "off" then report(m) end)  # the live gate reports its own

# What is on air, by name, in the outputs (ICY metadata on Icecast and harbor, tags where the format has them): the
# agent sends each title once it has logged the change. The title is a value here, never script or a URI.
air = insert_metadata(id="titles", air)
def set_title(value) =
  air.insert_metadata([("title", value)])
  "OK"
end
server.register(usage="title <text>", "title", set_title)

# Shows recorded from the air (playout.agent.air_records). The agent arms a recorder with a slot's frames, as stream
# positions, and its file (a path the station makes: no space or control character): it writes what goes to air
# from the first frame at or after the slot's start to the first at or after its end, and closes its file there.
def air_recorder(name) =
  from = ref(1000000000000.)
  until = ref(0.)
  path = ref("")
  def recording() =
    position = stream_now()
    position >= !from and position < !until
  end
  def arm(value) =
    parts = string.split(separator=" ", value)
    from := float_of_string(list.nth(parts, 0))
    until := float_of_string(list.nth(parts, 1))
    path := list.nth(parts, 2)
    "OK"
  end
  server.register(usage="<from stream seconds> <until stream seconds> <path>", name, arm)
  def closed(file) =
    print({liq_string(AIR_RECORDED_MARK)} ^ json.stringify(compact=true, [name, file]))
  end
  output.file(id=name, fallible=true, reopen_delay=0., on_close=closed, %wav, {{!path}},
              switch(track_sensitive=false, [(recording, air)]))
end
{"".join(f'air_recorder({liq_string(name)})' + chr(10) for name in AIR_RECORDERS)}
{output}
"""


def quiet_annotation(asset) -> dict[str, int]:
    """Whether the media's silences are on purpose (not dead air), always said: an annotation wins over a file's own
    tag of that name, which could otherwise switch the watchdog off."""
    return {"sk_quiet": int(asset.intentionally_quiet)}


def request_uri(path: Path | str, annotations: dict[str, int | float]) -> str:
    """A request URI for a local file, carrying numbers the on-air report hands back (item and asset ids, cues).

    The path must be absolute and free of control characters (it ends a telnet line or a
    playlist line); Liquidsoap reads it as a file, not as a protocol, since it starts with "/".
    """
    path = str(path)
    if not path.startswith("/") or not path.isprintable():  # no line break, tab or other control character
        raise UserError("unplayable_path", _("The media's local file name can't be handed to the engine."))
    notes = []
    for key, value in annotations.items():
        if type(value) not in (int, float) or not re.fullmatch(r"[a-z_]+", key):
            raise TypeError(f"annotation {key}={value!r}: only numbers under plain names reach the engine")
        notes.append(f"{key}={json.dumps(value)}")
    return f"annotate:{','.join(notes)}:{path}"


class Gateway:
    """A client of Liquidsoap's telnet server."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.address = (host, port)

    def command(self, *words: str, timeout: float = 2.0) -> str:
        """Send one command line and return the reply: words without spaces, the last one only without control characters."""
        *leading, last = words or ("",)
        if not all(_TELNET_WORD.fullmatch(word) for word in leading) or not last or not last.isprintable():
            raise ValueError(f"not a telnet command the engine may get: {words!r}")
        line = " ".join(words)
        with socket.create_connection(self.address, timeout=timeout) as sock:
            sock.sendall(line.encode() + b"\nquit\n")
            reply = b""
            while not reply.endswith(b"END\r\n") and b"Bye!" not in reply:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.decode(errors="replace").split("END")[0].strip()

    def alive(self) -> bool:
        try:
            return bool(self.command("uptime", timeout=1.0))
        except OSError:
            return False

    def push(self, path: Path | str, annotations: dict[str, int | float]) -> str:
        return self.command("queue.push", request_uri(path, annotations))

    def arm_webstream(self, *, item_id: int, start: float, end: float, relay_url: str) -> str:
        """Let the webstream input connect to the agent's relay (never to the operator's URL) for its window."""
        return self.command("webstream", str(int(item_id)), f"{start:.3f}", f"{end:.3f}", relay_url)

    def set_next_at(self, stream_seconds: float) -> str:
        """Open the queue's gate at a position in the engine's stream (``StreamClock.gate_for``; 0: now)."""
        return self.command("next_at", f"{stream_seconds:.6f}")

    def cut_at(self, stream_seconds: float) -> str:
        """End the item on air at a position in the engine's stream (``StreamClock.gate_for`` of its new end)."""
        return self.command("cut_at", f"{stream_seconds:.6f}")

    def skip(self) -> str:
        return self.command("skip")

    def set_paused(self, paused: bool) -> str:
        return self.command("paused", "true" if paused else "false")

    def set_title(self, title: str) -> str:
        """What the outputs announce as on air; a line break or any other character that isn't printable becomes
        a space (the telnet line ends at a line break), and a straight quote a typographic one (Liquidsoap writes
        ICY's ``StreamTitle='…';`` without escaping: a quote would end it and add fields)."""
        line = "".join(c if c.isprintable() else " " for c in title).replace("'", "’").strip()
        return self.command("title", line or "-")

    def record_air(self, recorder: str, *, from_position: float, until_position: float, path: Path) -> str:
        """Arm one of the engine's air recorders: the frames from ``from_position`` to ``until_position`` (stream
        seconds) into ``path`` (made by the station: absolute, no space, ``%`` or ``$``, which the output expands)."""
        text = str(path)
        if recorder not in AIR_RECORDERS or not text.startswith("/") or not re.fullmatch(r"[\w./-]+", text):
            raise ValueError(f"not an air recording the engine may get: {recorder} {text!r}")
        return self.command(recorder, f"{from_position:.6f}", f"{until_position:.6f}", text)

    def kick_live(self) -> str:
        """Let the presenter's source client go; the air goes back to the schedule or the filler at once."""
        return self.command("live_kick")

    def reload_filler(self) -> str:
        return self.command("filler.reload")

    def set_dead_air(self, seconds: float, threshold_dbfs: float) -> str:
        return self.command("dead_air", f"{float(seconds):.3f}", f"{float(threshold_dbfs):.3f}")


class StreamClock:
    """Places stream positions on the wall clock, and slots on the stream's frames.

    Liquidsoap computes the frame that covers stream positions [p, p + frame) once the wall clock
    reaches the stream's start plus p (it sleeps until then), and the wall time read while it
    computes it, or after, is that or later: the frame a track starts in can take tens of
    milliseconds more (opening the decoder). The stream's start is the smallest (wall − frame's
    position) among the recent readings, the engine's on-air reports and its clock readings ten
    times a second; from a few readings it can be milliseconds late, from a hundred well under one.
    It also follows the clock if it ever slips for good. Frames leave the engine as they are
    computed: this is the output stream's own timeline.
    """

    def __init__(self, window: int = 100):
        self.recent_starts: deque[float] = deque(maxlen=window)

    def observe(self, wall_seconds: float, stream_seconds: float) -> None:
        self.recent_starts.append(wall_seconds - _frame_position(stream_seconds))

    @property
    def start(self) -> float | None:
        """The wall time of the stream's position 0, once the engine has reported a track."""
        return min(self.recent_starts, default=None)

    def on_air_at(self, wall_seconds: float, stream_seconds: float) -> float:
        self.observe(wall_seconds, stream_seconds)
        return self.place(wall_seconds, stream_seconds)

    def place(self, wall_seconds: float, stream_seconds: float) -> float:
        """The wall time of a stream position, by the reports so far (this one, stamped anywhere, not counted)."""
        start = self.start
        return (wall_seconds - _frame_position(stream_seconds) if start is None else start) + stream_seconds

    def first_frame_at(self, wall_seconds: float) -> int:
        """The first frame that begins at or after a wall time (the stream's start must be known)."""
        return math.ceil((wall_seconds - self.start) / FRAME_SECONDS - 1e-6)

    def gate_for(self, wall_seconds: float) -> float:
        """The engine's ``next_at`` that puts an item on air on the first frame at or after a wall time: half a frame
        into the frame before (the switch hands over after the frame that finds the gate open)."""
        return (self.first_frame_at(wall_seconds) - 1.5) * FRAME_SECONDS


def _frame_position(stream_seconds: float) -> float:
    """The position of the frame a stream position falls in (reports are stamped in whole microseconds)."""
    return math.floor(stream_seconds / FRAME_SECONDS + 1e-3) * FRAME_SECONDS


class LiquidsoapEngine(EngineProcess):
    """One channel's Liquidsoap process; on-air changes are handed to ``on_air(metadata)``."""

    def __init__(self, *, script: str, workdir: Path, telnet_port: int, on_air: Callable[[dict, float], None],
                 on_live: Callable[[str, str], None] = lambda event, detail: None,
                 on_air_recorded: Callable[[str, str], None] = lambda recorder, path: None,
                 reads: tuple[Path, ...] = (), writes: tuple[Path, ...] = ()):
        """``on_live(event, detail)``: a presenter's source connected, disconnected or was lost past its grace (the
        detail: their credential's id), or a second one was refused (busy; the detail: its address). ``reads`` and ``writes``: the directories the engine uses besides its
        ``workdir`` (media, a file output)."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.script_path = workdir / "channel.liq"
        self.script_path.write_text(script)
        self.gateway = Gateway(telnet_port)
        self.on_air = on_air
        self.on_live = on_live
        self.on_air_recorded = on_air_recorded  # (recorder, path): a recorder closed its file
        if kill_strays(str(self.script_path)):  # it would hold the telnet port and the output
            logger.warning("killed a Liquidsoap left over from a previous agent for %s", self.script_path)
        self.webstream_connected = False
        self.stream_clock = StreamClock()
        self.on_air_metadata: dict = {}  # what the last on-air report said
        self.on_air_since = 0.0  # and when that went on air
        self.output_level_dbfs = float("-inf")  # the output's RMS level, reported every second
        self.failure = ""  # the error that stopped its output, if it said one
        super().__init__(
            [*ENGINE_COMMAND, str(self.script_path)], stderr=subprocess.STDOUT,
            # SIGKILL: Liquidsoap's own shutdown can hang, and a dead agent's engine must go at once.
            death_signal=signal.SIGKILL, writes=(workdir, *writes), reads=reads,
        )

    def read_output(self, line: str) -> None:
        line = line.rstrip()
        if line.startswith(ON_AIR_MARK):
            # Liquidsoap 2.1 prints metadata as a list of [key, value] pairs.
            if (report := _report(line, ON_AIR_MARK, "on-air", 3)) is None:
                return
            wall_microseconds, stream_microseconds, pairs = report
            try:
                metadata = dict(pairs)
            except (ValueError, TypeError):
                logger.warning("unreadable on-air report from Liquidsoap: %s", line)
                return
            metadata.pop(DEAD_AIR_KEY, None)  # a file's own tag of that name is no report of ours
            self.on_air_metadata = metadata
            self.on_air_since = self.stream_clock.on_air_at(wall_microseconds / 1e6, stream_microseconds / 1e6)
            self.on_air(metadata, self.on_air_since)
        elif line.startswith(DEAD_AIR_MARK):
            if (report := _report(line, DEAD_AIR_MARK, "dead-air", 4)) is None:
                return
            wall_microseconds, stream_microseconds, silent_seconds, moved_on = report
            # from the moment the silence began (within its track), naming what was on air then; stamped between
            # frames, so placed without joining the clock's samples (it would move the next tracks up to a frame)
            began = self.stream_clock.place(wall_microseconds / 1e6, stream_microseconds / 1e6) - silent_seconds
            self.on_air({**self.on_air_metadata, DEAD_AIR_KEY: {"seconds": silent_seconds, "moved_on": bool(moved_on)}},
                        max(began, self.on_air_since))
        elif line.startswith(CLOCK_MARK):
            if (report := _report(line, CLOCK_MARK, "clock", 2)) is None:
                return
            wall_microseconds, stream_microseconds = report
            # read between frames, where the engine's position already names the frame it computes next
            self.stream_clock.observe(wall_microseconds / 1e6, stream_microseconds / 1e6 - FRAME_SECONDS)
        elif line.startswith(LIVE_MARK):
            if (report := _report(line, LIVE_MARK, "live", 2)) is not None:
                event, detail = report
                self.on_live(str(event), str(detail))
        elif line.startswith(AIR_RECORDED_MARK):
            if (report := _report(line, AIR_RECORDED_MARK, "air recording", 2)) is not None:
                self.on_air_recorded(*map(str, report))
        elif line.startswith(LEVEL_MARK):
            self.output_level_dbfs = _decibels(line[len(LEVEL_MARK):])
        elif line.startswith(WEBSTREAM_MARK):
            self.webstream_connected = line == WEBSTREAM_MARK + "connected"
        else:
            self.keep(line)
            if OUTPUT_FAILED_MARK in line:
                logger.warning("Liquidsoap %s: its output did not start (%s); stopping it", self.pid, line)
                self.failure = self.failure or line
                self.process.kill()

    def last_words(self, count: int = 3) -> str:
        """Why it stopped, for the desk: the error that stopped its output if it said one, then its last lines (its
        shutdown's own lines would otherwise push the error out)."""
        lines = self.last_lines(count)
        if self.failure and self.failure not in lines:
            lines = [self.failure, *lines[-(count - 1):]] if count > 1 else [self.failure]
        return " | ".join(lines)


def _report(line: str, mark: str, kind: str, fields: int) -> list | None:
    """The JSON list of ``fields`` values after ``mark``; None, logged, for anything else."""
    try:
        values = json.loads(line[len(mark):])
    except ValueError:
        values = None
    if isinstance(values, list) and len(values) == fields:
        return values
    logger.warning("unreadable %s report from Liquidsoap: %s", kind, line)
    return None


def _decibels(text: str) -> float:
    """Liquidsoap's float: ``-inf`` for digital silence, a trailing dot for whole numbers."""
    text = text.strip().rstrip(".")
    try:
        return float(text)
    except ValueError:
        return float("-inf")
