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
- now-playing latency to 1,000 SSE clients: not built yet (issue 18, point 3); reported as null, and the bench is
  not met until it is.
- peak RSS of the agent and of the engine.

Run: .venv/bin/python bench/air_chain.py   (starts the embedded PostgreSQL itself; about 4 minutes)
"""

import array
import json
import os
import re
import shutil
import subprocess
import sys
import wave
from datetime import timedelta

from bench_support import LOUD, ROOT, SAMPLE_RATE, RssSampler, StreamTap, fresh_database_url, percentile, wait_until

sys.path.insert(0, str(ROOT))
WORK = ROOT / "var" / "bench-air-chain"
LIMIT_SECONDS = 3.0
SILENCES, BASELINE_SILENCES, SILENT_SLOT_SECONDS = 20, 3, 5.0
LEVELS, LEVEL_SLOT_SECONDS = 20, 3.0
TARGET_LUFS = -23.0
ITEM_HZ, FILLER_HZ = 700, 300


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
    _, data_start, anchor = tap.left()
    stream = b"".join(data for _, _, data in tap.chunks)[data_start:]
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
                                     dead_air_seconds=LIMIT_SECONDS, loudness_target_lufs=TARGET_LUFS)
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

    try:
        wait_until(lambda: AsRunEntry.objects.filter(channel=channel, title="Filler").exists(), 60, "the filler on air")
        dead_air_items = items(schedule(silent, SILENCES, SILENT_SLOT_SECONDS, after=4), SILENCES)
        wait_until(lambda: AsRunEntry.objects.filter(channel=channel, result="dead_air").count() >= SILENCES,
                   SILENCES * SILENT_SLOT_SECONDS + 30, "the dead air of every silent item")
        Channel.objects.filter(pk=channel.pk).update(dead_air_seconds=300)  # the watchdog, in effect, off
        baseline_items = items(schedule(silent, BASELINE_SILENCES, SILENT_SLOT_SECONDS, after=4), BASELINE_SILENCES)
        after = (baseline_items[-1].end_at - timezone.now()).total_seconds() + 1
        level_items = items(schedule(noise, 1, LEVEL_SLOT_SECONDS * LEVELS + 1, after=after), LEVELS)
        wait_until(lambda: timezone.now() > level_items[-1].end_at + timedelta(seconds=1),
                   (level_items[-1].end_at - timezone.now()).total_seconds() + 30, "the levels played")
        alerts = Alert.objects.filter(studio=studio, code="dead_air").count()
    finally:
        agent.terminate()
        agent.wait()
        sampler.running = False

    dead_air = silences_to_filler(tap, [item.start_at.timestamp() for item in dead_air_items])
    baseline = silences_to_filler(tap, [item.start_at.timestamp() for item in baseline_items])
    played = loudness_in_stream(tap, [(item.start_at.timestamp(), item.end_at.timestamp()) for item in level_items])
    errors = [abs(lufs - TARGET_LUFS) for lufs in played]
    own = [abs(asset.loudness_lufs - TARGET_LUFS) for asset in levels]
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
        "now_playing_sse_clients": 0,
        "now_playing_to_sse_ms_p99": None,  # point 3 is not built yet
        **sampler.figures(),
    }
    goal = {"dead_air_to_filler_s_p99": LIMIT_SECONDS + 1, "loudness_error_lu_p99": 1.0,
            "now_playing_to_sse_ms_p99": 1000}
    met = (len(dead_air) >= SILENCES and figures["dead_air_to_filler_s_p99"] <= LIMIT_SECONDS + 1
           and figures["loudness_error_lu_p99"] <= 1.0 and figures["now_playing_to_sse_ms_p99"] is not None
           and figures["now_playing_to_sse_ms_p99"] <= 1000)
    print(json.dumps({"bench": "air_chain", "figures": figures, "goal": goal, "met": met}))


if __name__ == "__main__":
    main()
