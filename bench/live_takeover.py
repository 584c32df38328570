"""Live takeover, measured between a presenter's source client on the wire and the channel's output stream.

A real node agent runs a real Liquidsoap channel with a live input and a filler (a 300 Hz tone); its output is a WAV
file written to a named pipe the bench reads (bench_support.StreamTap), each sample placed on the wall clock. A live
show is on. The presenter is a real source client, ffmpeg sending a 1 kHz tone as an Icecast source (MP3, 128 kb/s,
paced in real time), through a loopback relay of the bench's that notes when the source's first byte of audio (the
first after its request's headers) and its last went by. ``TRIES`` times:

- takeover: connect; from the source's first audio byte to the first 5 ms of the output that holds its tone (above
  1/20 of its level: the crossfade has begun). Goal: p99 ≤ 500 ms.
- fallback: after 1.5 s on air, the source is killed; from its last byte to the first 5 ms of the output that holds the
  filler's tone and no longer the presenter's. The channel waits its grace time (the default, 5 s) for a reconnect.
  Goal: p99 ≤ grace + 1 s.
- baseline, the same run: the same takeover on a Liquidsoap with its defaults for a harbor input (12 s buffer,
  ffmpeg decoding) over a filler, 3 times.
- peak RSS of the agent and the engine.

Run: .venv/bin/python bench/live_takeover.py   (starts the embedded PostgreSQL itself; about 4 minutes)
"""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

from bench_support import ROOT, SAMPLE_RATE, RssSampler, StreamTap, fresh_database_url, percentile, wait_until

sys.path.insert(0, str(ROOT))
from station.tests.hosts import pipe  # noqa: E402  (the tests' byte pump, importable once ROOT is on the path)

TRIES, BASELINE_TRIES = 20, 3
PRESENTER_HZ, FILLER_HZ = 1000, 300
ON_AIR_SECONDS = 1.5
WINDOW = SAMPLE_RATE // 200  # 5 ms
HEARD = 0.05  # of a tone's level (ffmpeg's sine and our filler: 1/8 of full scale)
TONE_LEVEL = 32767 / 8
WORK = ROOT / "var" / "bench-live"


class SourceRelay(threading.Thread):
    """Passes a source client's connection on to the live input, noting when its first byte of audio (after the
    request's headers) and its last went by."""

    def __init__(self, target_port: int):
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target_port = target_port
        self.first_audio_at: float | None = None
        self.last_byte_at: float | None = None
        self.start()

    def reset(self) -> None:
        self.first_audio_at = self.last_byte_at = None

    def run(self):
        while True:
            client, _ = self.listener.accept()
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
            threading.Thread(target=self._source, args=(client, upstream), daemon=True).start()

    def _source(self, client: socket.socket, upstream: socket.socket) -> None:
        head = b""
        try:
            while data := client.recv(1 << 16):
                now = time.time()
                if head is not None:
                    head += data
                    if b"\r\n\r\n" not in head:
                        upstream.sendall(data)
                        continue
                    if len(head) > head.index(b"\r\n\r\n") + 4 and self.first_audio_at is None:
                        self.first_audio_at = now
                    head = None
                elif self.first_audio_at is None:
                    self.first_audio_at = now
                upstream.sendall(data)
                self.last_byte_at = now
        except OSError:
            pass
        self.last_byte_at = time.time() if self.last_byte_at is None else self.last_byte_at
        for sock in (client, upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # a close alone would leave the other thread's recv holding it open
            except OSError:
                pass
            sock.close()


def source_client(port: int, password: str) -> subprocess.Popen:
    from playout.tests.output import icecast_source  # the tests' presenter: one command for both

    return subprocess.Popen(icecast_source(port, "source", password, frequency=PRESENTER_HZ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def level(left, start: int, frequency: float) -> float:
    """The amplitude of ``frequency`` in 5 ms of samples from ``start`` (Goertzel, Hann window)."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / SAMPLE_RATE)
    previous = before = 0.0
    weight_sum = 0.0
    for n in range(WINDOW):
        weight = 0.5 - 0.5 * math.cos(2 * math.pi * n / (WINDOW - 1))
        weight_sum += weight
        previous, before = left[start + n] * weight + coefficient * previous - before, previous
    power = previous * previous + before * before - coefficient * previous * before
    return 2 * math.sqrt(max(power, 0.0)) / weight_sum


def first_heard(tap_left, anchor: float, after: float, until: float, *, frequency: float,
                absent: float | None = None) -> float | None:
    """The wall time of the first 5 ms after ``after`` that hold ``frequency`` (and not ``absent``)."""
    start = max(0, int((after - anchor) * SAMPLE_RATE))
    stop = min(len(tap_left) - WINDOW, int((until - anchor) * SAMPLE_RATE))
    for index in range(start, stop, WINDOW // 5):
        if level(tap_left, index, frequency) > HEARD * TONE_LEVEL and (
                absent is None or level(tap_left, index, absent) < HEARD * TONE_LEVEL):
            return anchor + index / SAMPLE_RATE
    return None


def summary(values: list[float]) -> dict:
    return {"tries": len(values), "p50_ms": round(percentile(values, 0.5) * 1000, 1),
            "p99_ms": round(percentile(values, 0.99) * 1000, 1), "max_ms": round(max(values) * 1000, 1)}


def takeovers(tap: StreamTap, relay: SourceRelay, password: str, tries: int, *, on_air: float, after_drop: float,
              drop_grace: float | None) -> tuple[list[float], list[float]]:
    """Connect, stay ``on_air`` seconds, drop, wait ``after_drop``; ``tries`` times. Returns the takeover times and,
    with ``drop_grace`` (the channel's), the fallback times."""
    moments = []
    for _ in range(tries):
        relay.reset()
        source = source_client(relay.port, password)
        wait_until(lambda: relay.first_audio_at, 10, "the source's first audio")
        connected = relay.first_audio_at
        time.sleep(on_air)
        source.kill()
        source.wait()
        wait_until(lambda: relay.last_byte_at, 10, "the source to close")
        moments.append((connected, relay.last_byte_at))
        time.sleep(after_drop)
    left, _, anchor = tap.left()
    taken, fell_back = [], []
    for connected, dropped in moments:
        heard = first_heard(left, anchor, connected, dropped + 1, frequency=PRESENTER_HZ)
        if heard is None:
            raise SystemExit(f"the presenter connected at {connected:.3f} was never heard")
        taken.append(heard - connected)
        if drop_grace is not None:
            back = first_heard(left, anchor, dropped, dropped + drop_grace + 10, frequency=FILLER_HZ,
                               absent=PRESENTER_HZ)
            if back is None:
                raise SystemExit(f"the filler never came back after the drop at {dropped:.3f}")
            fell_back.append(back - dropped)
    return taken, fell_back


BASELINE_SCRIPT = """\
settings.init.allow_root.set(true)
settings.log.stdout.set(true)
settings.frame.audio.samplerate.set(44100)
live = input.harbor(port={port}, password="{password}", "presenter")
output.file(%wav, "{path}", fallback(track_sensitive=false, [live, sine({filler_hz}., amplitude=0.125)]))
"""


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "media").mkdir(parents=True)
    os.environ.update(DATABASE_URL=fresh_database_url("bench_live"), MEDIA_ROOT=str(WORK / "media"),
                      PLAYOUT_CACHE_ROOT=str(WORK / "cache"), DJANGO_SETTINGS_MODULE="station.settings",
                      LOG_LEVEL="WARNING", PLAYOUT_HARBOR_PORTS="1024-65535")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from ingest.media import generate_tone
    from ingest.services import asset_register_file
    from playout.models import Channel, Playlist, PlaylistItem, Show
    from playout.outputs import file_output_path
    from playout.presenters import live_credential_issue
    from recorders.tests.stream_server import closed_port
    from station.models import Node, Studio

    call_command("migrate", verbosity=0)
    studio = Studio.objects.create(name="Bench", slug="bench")
    node = Node.objects.create(name="bench-live", capabilities=["playout"])
    filler = Playlist.objects.create(studio=studio, name="Filler")
    PlaylistItem.objects.create(playlist=filler, asset=asset_register_file(
        studio=studio, title="Filler", path=generate_tone(WORK / "media" / "filler.wav", frequency=FILLER_HZ,
                                                          seconds=600)))
    live_port = closed_port()
    channel = Channel.objects.create(studio=studio, name="Live", slug="live", node=node, status=Channel.Status.STARTING,
                                     output_type=Channel.Output.FILE, output_settings={"format": "wav"},
                                     fallback_playlist=filler, live_input_port=live_port)
    show = Show.objects.create(channel=channel, name="Live show", start_at=timezone.now(),
                               end_at=timezone.now() + timedelta(hours=1))
    _, password = live_credential_issue(show=show, presenter="Bench")
    tap = StreamTap(file_output_path(settings.PLAYOUT_CACHE_ROOT / node.name, channel.pk, "wav"))
    sampler = RssSampler()
    sampler.start()
    agent = subprocess.Popen([sys.executable, "manage.py", "run_node", "--name", node.name], cwd=ROOT, env=os.environ)
    sampler.pids.add(agent.pid)
    try:
        wait_until(lambda: Channel.objects.get(pk=channel.pk).status == Channel.Status.RUNNING, 60, "the channel")
        wait_until(lambda: show.instances.exists(), 30, "the show's slot")
        time.sleep(1)
        relay = SourceRelay(live_port)
        taken, fell_back = takeovers(tap, relay, password, TRIES, on_air=ON_AIR_SECONDS,
                                     after_drop=channel.live_grace_seconds + 1.5, drop_grace=channel.live_grace_seconds)
    finally:
        agent.terminate()
        agent.wait()
    ours_memory = sampler.figures()

    # --- baseline: a harbor input with Liquidsoap's defaults, over a filler tone ----------------------------------
    baseline_port = closed_port()
    baseline_tap = StreamTap(WORK / "baseline.wav")
    script = WORK / "baseline.liq"
    script.write_text(BASELINE_SCRIPT.format(port=baseline_port, password="hackme", path=baseline_tap.path,
                                             filler_hz=FILLER_HZ))
    engine = subprocess.Popen(["liquidsoap", str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", baseline_port)) == 0, 60, "the baseline engine")
        # its 12 s buffer heard out after each drop, so a try hears only its own source
        baseline_taken, _ = takeovers(baseline_tap, SourceRelay(baseline_port), "hackme", BASELINE_TRIES, on_air=14,
                                      after_drop=13, drop_grace=None)
    finally:
        engine.kill()
        engine.wait()

    grace = channel.live_grace_seconds
    figures = {
        "takeover": summary(taken),
        "fallback_after_drop": summary(fell_back),
        "grace_seconds": grace,
        "baseline_liquidsoap_defaults_takeover": summary(baseline_taken),
        **ours_memory,
    }
    goal = {"takeover_p99_ms": 500, "fallback_p99_ms": (grace + 1) * 1000}
    met = figures["takeover"]["p99_ms"] <= goal["takeover_p99_ms"] and \
        figures["fallback_after_drop"]["p99_ms"] <= goal["fallback_p99_ms"]
    print(json.dumps({"bench": "live_takeover", "figures": figures, "goal": goal, "met": met}))


if __name__ == "__main__":
    main()
