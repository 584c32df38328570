"""The air chain, measured in a channel's output stream: dead air replaced by the filler, and loudness at the target.

A real node agent runs a real Liquidsoap channel whose output is a WAV file written to a named pipe the bench reads
(bench_support.StreamTap): every figure is taken from the samples that left the engine, placed on the stream's own
timeline.

- dead air: 20 items, each a 1 s tone (700 Hz) then silence, in 6 s slots, on a channel whose dead-air limit is 3 s.
  Per item: from the tone's last sound to the first sound of the filler (a 300 Hz tone, told apart by its
  frequency) in the stream. Goal: p99 ≤ the limit + 1 s. Baseline, the same run: 3 such items with the limit
  raised to 300 s on the running engine (as with no watchdog): the silence lasts to the end of the slot.
- loudness: 20 files of pink noise spread over 20 LU (about −13 to −33 LUFS), measured at ingest, played back to
  back at the channel's target (−23 LUFS): each item's integrated loudness in the stream (its slot less 0.5 s at
  either end) against the target. Goal: p99 |error| ≤ 1 LU. Baseline: the files' own loudness against the target
  (what plays with no gain).
- now-playing to websites: 1,000 Server-Sent Events clients (one process of asyncio sockets, as SCHED_BATCH work)
  on the channel's public stream, served by one web process (Daphne), through the dead-air part: per change on air,
  from the change's instant in the stream (the as-run start the document carries) to each client's receipt of it.
  Goal: p99 ≤ 1 s. Also: the time for all 1,000 to connect and get their first document.
- peak RSS of the agent, the engine, the web process and the clients.

Run: .venv/bin/python bench/air_chain.py   (starts the embedded PostgreSQL itself; about 4 minutes)
"""

import array
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
import wave
from datetime import datetime, timedelta

from bench_support import (LOUD, ROOT, SAMPLE_RATE, RssSampler, StreamTap, fresh_database_url, percentile, start_web,
                           stop_web, wait_until)

sys.path.insert(0, str(ROOT))
WORK = ROOT / "var" / "bench-air-chain"
LIMIT_SECONDS = 3.0
SILENCES, BASELINE_SILENCES, SILENT_SLOT_SECONDS = 20, 3, 5.0
LEVELS, LEVEL_SLOT_SECONDS = 20, 3.0
TARGET_LUFS = -23.0
ITEM_HZ, FILLER_HZ = 700, 300
SSE_CLIENTS, SSE_CONNECTING, WEB_PORT = 1000, 50, 8767


class _Listener(asyncio.Protocol):
    """A website's EventSource, reduced to what the bench needs: when each document arrived (HTTP/1.0: the body
    is the event stream itself, not chunked)."""

    def __init__(self, path: str, receipts: dict[bytes, list[float]]):
        self.path, self.receipts, self.buffer, self.started = path, receipts, b"", False
        self.first = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        transport.write(f"GET {self.path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        self.buffer += data
        if not self.started:
            head, found, self.buffer = self.buffer.partition(b"\r\n\r\n")
            if not found:
                self.buffer = head
                return
            if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
                self.first.set_exception(ConnectionError(head.split(b"\r\n")[0].decode()))
                return
            self.started = True
        *messages, self.buffer = self.buffer.split(b"\n\n")
        for message in messages:
            if not self.first.done():  # the document as of connecting
                self.first.set_result(arrived)
            elif message.startswith(b"id: "):  # a change (a keepalive is a comment)
                self.receipts.setdefault(message.split(b"\ndata: ", 1)[1], []).append(arrived)

    def connection_lost(self, exc):
        if not self.first.done():
            self.first.set_exception(ConnectionError(f"connection lost: {exc}"))


def _listeners(path: str, count: int, connected, stop, results) -> None:
    """The clients' process: ``count`` streams opened, then (when connected) {document: [receipt times]} once told to
    stop."""
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))

    async def run():
        loop, receipts, gate = asyncio.get_running_loop(), {}, asyncio.Semaphore(SSE_CONNECTING)

        async def connect():
            async with gate:
                try:
                    _, listener = await loop.create_connection(lambda: _Listener(path, receipts), "127.0.0.1", WEB_PORT)
                    return await asyncio.wait_for(listener.first, 60)
                except (OSError, TimeoutError, ConnectionError):
                    return None

        began = time.time()
        firsts = await asyncio.gather(*(connect() for _ in range(count)))
        connected.put((max((at for at in firsts if at), default=time.time()) - began, sum(at is None for at in firsts)))
        await asyncio.to_thread(stop.wait)
        results.put({document.decode(): times for document, times in receipts.items()})

    asyncio.run(run())


def pink_noise(path, gain_db: float) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"anoisesrc=color=pink:amplitude=0.3:duration={LEVEL_SLOT_SECONDS}:sample_rate=44100,"
                    f"volume={gain_db:.2f}dB", "-ac", "2", str(path)], check=True, timeout=60)


def tone_then_silence(path, seconds: float) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency={ITEM_HZ}:sample_rate=44100:duration=1,apad=pad_dur={seconds - 1}", "-ac", "2",
                    str(path)], check=True, timeout=60)


def frequency_at(left, index: int) -> float:
    """The frequency of the sound starting at ``index``, from its zero crossings over 50 ms."""
    window = left[index:index + SAMPLE_RATE // 20]
    crossings = sum(1 for a, b in zip(window, window[1:]) if (a < 0) != (b < 0))
    return crossings / 2 / (len(window) / SAMPLE_RATE)


def silences_to_filler(tap: StreamTap, slots: list[float]) -> list[float]:
    """Per slot: seconds from the item's tone ending to the filler's first sound, in the stream."""
    left, _, anchor = tap.left()
    found = []
    for slot in slots:
        start = int((slot - anchor) * SAMPLE_RATE)
        tone_end = max(index for index in range(start, start + int(1.5 * SAMPLE_RATE)) if abs(left[index]) > LOUD)
        filler = next((index for index in range(tone_end + SAMPLE_RATE // 10, start + int(SILENT_SLOT_SECONDS * SAMPLE_RATE))
                       if abs(left[index]) > LOUD), None)
        if filler is None:  # silent to the end of its slot: what follows is the next item, not the filler
            found.append((start + SILENT_SLOT_SECONDS * SAMPLE_RATE - tone_end) / SAMPLE_RATE)
            continue
        heard = frequency_at(left, filler)
        if abs(heard - FILLER_HZ) > 50:
            raise SystemExit(f"after the dead air at {slot:.2f} came a {heard:.0f} Hz sound, not the filler")
        found.append((filler - tone_end) / SAMPLE_RATE)
    return found


def integrated_lufs(wav_path) -> float:
    analysed = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(wav_path), "-af", "ebur128",
                               "-f", "null", "-"], capture_output=True, text=True, timeout=60)
    return float(re.findall(r"\bI:\s*(-?[\d.]+) LUFS", analysed.stderr)[-1])


def loudness_in_stream(tap: StreamTap, slots: list[tuple[float, float]]) -> list[float]:
    """Each item's integrated loudness in the stream, over its slot less 0.5 s at either end."""
    stream, _, anchor = tap.pcm()
    measured = []
    for index, (start, end) in enumerate(slots):
        first = int((start + 0.5 - anchor) * SAMPLE_RATE)
        last = int((end - 0.5 - anchor) * SAMPLE_RATE)
        frames = array.array("h")
        frames.frombytes(stream[first * 4:last * 4])
        path = WORK / f"level-{index}.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(frames.tobytes())
        measured.append(integrated_lufs(path))
    return measured


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "media").mkdir(parents=True)
    os.environ.update(DATABASE_URL=fresh_database_url("bench_air_chain"), MEDIA_ROOT=str(WORK / "media"),
                      PLAYOUT_CACHE_ROOT=str(WORK / "cache"), DJANGO_SETTINGS_MODULE="station.settings",
                      AGENT_HEARTBEAT_SECONDS="0.5", PLAYOUT_PROBE_SECONDS="0.5", LOG_LEVEL="WARNING")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from ingest.media import generate_tone
    from ingest.services import asset_measure_loudness, asset_register_file
    from playout.models import AsRunEntry, Channel, Playlist, PlaylistItem, ScheduledItem, Show, ShowInstance
    from playout.outputs import file_output_path
    from station.models import Alert, Node, Studio

    call_command("migrate", verbosity=0)
    studio = Studio.objects.create(name="Bench", slug="bench")
    node = Node.objects.create(name="bench-1", capabilities=["playout"])
    media = WORK / "media"
    filler = Playlist.objects.create(studio=studio, name="Filler")
    PlaylistItem.objects.create(playlist=filler, asset=asset_register_file(
        studio=studio, path=generate_tone(media / "filler.mp3", frequency=FILLER_HZ, seconds=600), title="Filler"))
    tone_then_silence(media / "silent.mp3", SILENT_SLOT_SECONDS + 2)
    silent = Playlist.objects.create(studio=studio, name="Silent")
    PlaylistItem.objects.create(playlist=silent, asset=asset_register_file(studio=studio, path=media / "silent.mp3",
                                                                           title="Falls silent"))
    levels = []
    for index in range(LEVELS):
        path = media / f"noise-{index}.mp3"
        pink_noise(path, 12.9 - index * 20 / (LEVELS - 1))
        levels.append(asset_measure_loudness(asset_id=asset_register_file(studio=studio, path=path,
                                                                          title=f"Level {index}").pk))
    noise = Playlist.objects.create(studio=studio, name="Levels")
    PlaylistItem.objects.bulk_create(PlaylistItem(playlist=noise, position=index, asset=asset)
                                     for index, asset in enumerate(levels))

    channel = Channel.objects.create(studio=studio, name="Air", slug="air", node=node, output_type=Channel.Output.FILE,
                                     output_settings={"format": "wav"}, fallback_playlist=filler,
                                     dead_air_seconds=LIMIT_SECONDS, loudness_target_lufs=TARGET_LUFS,
                                     public_now_playing=True)
    tap = StreamTap(file_output_path(settings.PLAYOUT_CACHE_ROOT / node.name, channel.pk, "wav"))
    sampler = RssSampler()
    sampler.start()
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.STARTING)
    agent = subprocess.Popen([sys.executable, "manage.py", "run_node", "--name", node.name], cwd=ROOT, env=os.environ)
    sampler.pids.add(agent.pid)

    def schedule(playlist, count: int, seconds: float, after: float) -> Show:
        """``count`` back-to-back instances of a show of ``playlist`` lasting ``seconds``, from ``after`` s on."""
        start = timezone.now() + timedelta(seconds=after)
        show = Show.objects.create(channel=channel, name=playlist.name, playlist=playlist, start_at=start,
                                   end_at=start + timedelta(seconds=seconds))
        ShowInstance.objects.bulk_create(
            ShowInstance(show=show, channel=channel, start_at=start + timedelta(seconds=seconds * k),
                         end_at=start + timedelta(seconds=seconds * (k + 1))) for k in range(1, count))
        return show

    def items(show, count: int) -> list:
        """The show's items on the timeline, as the agent built it."""
        return wait_until(lambda: len(found := list(ScheduledItem.objects.filter(instance__show=show)
                                                    .order_by("start_at"))) >= count and found, 30, "the timeline")

    # every client comes from 127.0.0.1 here: the per-address limits are raised past them
    web = start_web(WEB_PORT, 1, {"PUBLIC_STREAMS_PER_ADDRESS": str(SSE_CLIENTS + 10),
                                  "PUBLIC_REQUESTS_PER_MINUTE": str(SSE_CLIENTS + 10)}, sampler, "daphne")
    spawn = multiprocessing.get_context("spawn")  # nothing of this process's database connections in the clients
    connected, stop, results = spawn.Queue(), spawn.Event(), spawn.Queue()
    clients = spawn.Process(target=_listeners, args=(f"/public/channels/{channel.slug}/now-playing/events", SSE_CLIENTS,
                                                     connected, stop, results))
    try:
        wait_until(lambda: AsRunEntry.objects.filter(channel=channel, title="Filler").exists(), 60, "the filler on air")
        clients.start()
        sampler.alone[clients.pid] = "SSE clients"
        sse_connect_s, sse_failed = connected.get(timeout=120)
        dead_air_items = items(schedule(silent, SILENCES, SILENT_SLOT_SECONDS, after=4), SILENCES)
        wait_until(lambda: AsRunEntry.objects.filter(channel=channel, result="dead_air").count() >= SILENCES,
                   SILENCES * SILENT_SLOT_SECONDS + 30, "the dead air of every silent item")
        time.sleep(1)  # the last change's receipts
        stop.set()
        receipts = results.get(timeout=60)
        clients.join()
        stop_web(WEB_PORT, web)
        Channel.objects.filter(pk=channel.pk).update(dead_air_seconds=300)  # the watchdog, in effect, off
        baseline_items = items(schedule(silent, BASELINE_SILENCES, SILENT_SLOT_SECONDS, after=4), BASELINE_SILENCES)
        after = (baseline_items[-1].end_at - timezone.now()).total_seconds() + 1
        level_items = items(schedule(noise, 1, LEVEL_SLOT_SECONDS * LEVELS + 1, after=after), LEVELS)
        wait_until(lambda: timezone.now() > level_items[-1].end_at + timedelta(seconds=1),
                   (level_items[-1].end_at - timezone.now()).total_seconds() + 30, "the levels played")
        alerts = Alert.objects.filter(studio=studio, code="dead_air").count()
    finally:
        if clients.is_alive():
            clients.kill()
        for process in (agent, *web):
            if process.poll() is None:
                process.terminate()
                process.wait()
        sampler.running = False

    dead_air = silences_to_filler(tap, [item.start_at.timestamp() for item in dead_air_items])
    baseline = silences_to_filler(tap, [item.start_at.timestamp() for item in baseline_items])
    played = loudness_in_stream(tap, [(item.start_at.timestamp(), item.end_at.timestamp()) for item in level_items])
    errors = [abs(lufs - TARGET_LUFS) for lufs in played]
    own = [abs(asset.loudness_lufs - TARGET_LUFS) for asset in levels]
    changes, sse, sse_missing = 0, [], 0
    for document, arrivals in receipts.items():
        now = json.loads(document)["now"]
        if now is None:  # dead air: nothing heard on air, nothing to time
            continue
        changes += 1
        sse_missing += SSE_CLIENTS - sse_failed - len(arrivals)
        changed_at = datetime.fromisoformat(now["started_at"]).timestamp()
        sse += [arrived - changed_at for arrived in arrivals]
    figures = {
        "dead_air_limit_s": LIMIT_SECONDS,
        "dead_air_to_filler_s": [round(seconds, 2) for seconds in dead_air],
        "dead_air_to_filler_s_p99": round(percentile(dead_air, 0.99), 2),
        "dead_air_alerts": alerts,
        "baseline_no_watchdog_silence_s": [round(seconds, 2) for seconds in baseline],
        "loudness_files_lufs": [round(asset.loudness_lufs, 1) for asset in levels],
        "loudness_in_stream_lufs": [round(lufs, 1) for lufs in played],
        "loudness_error_lu_p99": round(percentile(errors, 0.99), 2),
        "baseline_no_gain_error_lu_p99": round(percentile(own, 0.99), 2),
        "now_playing_sse_clients": SSE_CLIENTS - sse_failed,
        "now_playing_sse_connect_all_s": round(sse_connect_s, 2),
        "now_playing_changes": changes,
        "now_playing_missing": sse_missing,
        "now_playing_to_sse_ms_p50": round(percentile(sse, 0.5) * 1000, 1),
        "now_playing_to_sse_ms_p99": round(percentile(sse, 0.99) * 1000, 1),
        **sampler.figures(),
    }
    goal = {"dead_air_to_filler_s_p99": LIMIT_SECONDS + 1, "loudness_error_lu_p99": 1.0,
            "now_playing_to_sse_ms_p99": 1000}
    met = (len(dead_air) >= SILENCES and figures["dead_air_to_filler_s_p99"] <= LIMIT_SECONDS + 1
           and figures["loudness_error_lu_p99"] <= 1.0 and not sse_failed and not sse_missing and changes >= SILENCES
           and figures["now_playing_to_sse_ms_p99"] <= 1000)
    print(json.dumps({"bench": "air_chain", "figures": figures, "goal": goal, "met": met}))


if __name__ == "__main__":
    main()
