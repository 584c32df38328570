"""Playout accuracy and failover, measured on real Liquidsoap engines run by real node agents.

- ours: 50 one-second tones on a channel, each its own show slot about 1.5 s apart (the slots'
  phase against the engine's frames varies), played by a node agent (prepared queue, gate at a
  stream position, items on the first frame at or after their slot). The channel's output is a WAV
  file written to a named pipe the bench reads: each tone's first sample is found in the stream,
  and its time is the stream's own timeline (the engine paces the stream to the wall clock; the
  anchor is the earliest chunk arrival less its position). Also reported: when the chunk holding
  that sample left the engine, and the as-run start.
- baseline: the same engine script, each item pushed at its slot start with the gate open, as
  LibreTime does; measured in its output stream the same way.
- failover, with the default heartbeat and probe settings: two agents and the health loop; the agent
  on air is SIGKILLed 5 times (its engine dies with it); time from the kill to sound again in the
  output stream of the engine on the other node (a WAV pipe per node), and to the as-run row. Then
  the engine alone is SIGKILLed 5 times: time until sound again, on its node or another.

Run: .venv/bin/python bench/playout_accuracy.py   (starts the embedded PostgreSQL itself)
"""

import array
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta

from bench_support import LOUD, ROOT, RssSampler, StreamTap, fresh_database_url, percentile, wait_until

sys.path.insert(0, str(ROOT))
ITEMS, ITEM_SECONDS, SPACING_SECONDS, KILLS = 50, 1.0, 1.5, 5
WORK = ROOT / "var" / "bench-playout"


class SoundArrivals:
    """A node's WAV output of one channel, read from a named pipe writer after writer (an engine that dies closes it,
    the next opens it): when each writer opened it, and when each chunk holding sound arrived, by writer."""

    def __init__(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        os.chmod(path, 0o666)
        self.path = path
        self.writers: list[tuple[float, list[float]]] = []  # (opened at, sound arrivals)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            fd = os.open(self.path, os.O_RDONLY)  # waits for a writer
            opened, arrivals, head, carry = time.time(), [], b"", b""
            self.writers.append((opened, arrivals))
            while data := os.read(fd, 1 << 16):
                if head is not None:  # the header, up to its data chunk
                    head += data
                    if (at := head.find(b"data")) < 0 or len(head) < at + 8:
                        continue
                    data, head = head[at + 8:], None
                data = carry + data
                whole = len(data) // 4 * 4
                data, carry = data[:whole], data[whole:]
                samples = array.array("h", data)
                if samples and max(samples) > LOUD:
                    arrivals.append(time.time())
            os.close(fd)

    def sound_again_after(self, moment: float) -> float | None:
        """The first sound from a writer that opened after ``moment`` (not the dead engine's last chunks)."""
        return min((arrivals[0] for opened, arrivals in self.writers if opened > moment and arrivals), default=None)


def errors_against(slots, onsets) -> tuple[list[float], list[float]]:
    """Per slot, the stream and arrival errors (ms) of the onset nearest it."""
    stream, arrival = [], []
    for slot in slots:
        near = [onset for onset in onsets if -0.5 < onset[0] - slot < 0.7]
        if near:
            stream.append((near[0][0] - slot) * 1000)
            arrival.append((near[0][1] - slot) * 1000)
    return stream, arrival


def summary(prefix: str, errors: list[float]) -> dict:
    return {
        f"{prefix}_error_ms_p50": round(statistics.median(errors), 1),
        f"{prefix}_abs_error_ms_p99": round(percentile([abs(e) for e in errors], 0.99), 1),
        f"{prefix}_error_ms_min": round(min(errors), 1),
    }


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "media").mkdir(parents=True)
    os.environ.update(DATABASE_URL=fresh_database_url("bench_playout"), MEDIA_ROOT=str(WORK / "media"), PLAYOUT_CACHE_ROOT=str(WORK / "cache"),
                      DJANGO_SETTINGS_MODULE="station.settings", LOG_LEVEL="WARNING")
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from ingest.media import generate_tone
    from ingest.services import asset_register_file
    from django.conf import settings

    from playout.liquidsoap import LiquidsoapEngine, output_clause, render_script
    from playout.models import AsRunEntry, Channel, Playlist, PlaylistItem, Show, ShowInstance
    from playout.outputs import file_output_path
    from station.models import Node, Studio

    call_command("migrate", verbosity=0)
    studio = Studio.objects.create(name="Bench", slug="bench")
    nodes = [Node.objects.create(name=f"bench-{n}", capabilities=["playout"]) for n in (1, 2)]
    tone = asset_register_file(studio=studio, path=generate_tone(WORK / "media" / "tone.mp3", frequency=700,
                                                                 seconds=ITEM_SECONDS), title="Tone")
    filler_tone = asset_register_file(studio=studio, path=generate_tone(WORK / "media" / "filler.mp3", frequency=300,
                                                                        seconds=120), title="Filler")
    playlist = Playlist.objects.create(studio=studio, name="Item")
    PlaylistItem.objects.create(playlist=playlist, asset=tone, cue_out_seconds=ITEM_SECONDS)
    sampler = RssSampler()
    sampler.start()

    def agent(name):
        process = subprocess.Popen([sys.executable, "manage.py", "run_node", "--name", name], cwd=ROOT, env=os.environ)
        sampler.pids.add(process.pid)
        return process

    # --- ours --------------------------------------------------------------------------------
    channel = Channel.objects.create(studio=studio, name="Ours", slug="ours", node=nodes[0], output_type=Channel.Output.FILE,
                                     output_settings={"format": "wav"})
    # the engine writes where the station names its file output; the tap reads it there
    ours_tap = StreamTap(file_output_path(settings.PLAYOUT_CACHE_ROOT / nodes[0].name, channel.pk, "wav"))
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.STARTING)
    first = agent("bench-1")
    wait_until(lambda: Channel.objects.get(pk=channel.pk).status == Channel.Status.RUNNING, 60)
    # 0.7 ms more per slot walks the slots' phase across the engine's frames (2.3 ms)
    offsets = [SPACING_SECONDS * k + (7 * k % 23) / 10000 for k in range(ITEMS)]
    start = timezone.now() + timedelta(seconds=4)
    show = Show.objects.create(channel=channel, name="Slot", playlist=playlist, start_at=start,
                               end_at=start + timedelta(seconds=ITEM_SECONDS))
    ShowInstance.objects.bulk_create(
        ShowInstance(show=show, channel=channel, start_at=start + timedelta(seconds=offset),
                     end_at=start + timedelta(seconds=offset + ITEM_SECONDS)) for offset in offsets[1:]
    )
    # the agent materialises the show's own slot and builds every instance's item within its horizon
    wait_until(lambda: AsRunEntry.objects.filter(channel=channel, result="played").count() >= ITEMS, offsets[-1] + 30)
    played = AsRunEntry.objects.filter(channel=channel, result="played").select_related("scheduled_item")
    ours_as_run = [(entry.started_at - entry.scheduled_item.start_at).total_seconds() * 1000 for entry in played]
    ours_stream, ours_arrival = errors_against([entry.scheduled_item.start_at.timestamp() for entry in played],
                                               ours_tap.onsets())
    first.terminate()
    first.wait()
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.STOPPED)

    # --- baseline: push at the slot start, gate open (LibreTime's way) ----------------------------
    baseline_tap = StreamTap(WORK / "baseline.wav")
    reports = []
    script = render_script(output=output_clause("file", {"format": "wav", "bitrate": 128}, "mksafe(air)",
                                                file_path=baseline_tap.path),
                           telnet_port=21999, filler_playlist=None)
    engine = LiquidsoapEngine(script=script, workdir=WORK / "baseline", telnet_port=21999,
                              on_air=lambda metadata, at: reports.append((metadata, at)))
    sampler.pids.add(engine.process.pid)
    wait_until(engine.gateway.alive, 60)
    engine.gateway.set_next_at(0)
    slots = [time.time() + 2 + offset for offset in offsets]
    for index, slot in enumerate(slots):
        time.sleep(max(0.0, slot - time.time()))
        engine.gateway.push(str(WORK / "media" / "tone.mp3"), {"sk_item": index})
    time.sleep(ITEM_SECONDS + 1)
    engine.stop()
    started = {int(m["sk_item"]): at for m, at in reports if m.get("sk_item") is not None}
    baseline_as_run = [(started[index] - slot) * 1000 for index, slot in enumerate(slots) if index in started]
    baseline_stream, baseline_arrival = errors_against(slots, baseline_tap.onsets())

    # --- failover ----------------------------------------------------------------------------
    filler = Playlist.objects.create(studio=studio, name="Filler")
    PlaylistItem.objects.create(playlist=filler, asset=filler_tone)
    failing = Channel.objects.create(studio=studio, name="Failover", slug="failover", node=nodes[0],
                                     status=Channel.Status.STARTING, fallback_playlist=filler, output_type="file",
                                     output_settings={"format": "wav"})
    outputs = [SoundArrivals(file_output_path(settings.PLAYOUT_CACHE_ROOT / node.name, failing.pk, "wav"))
               for node in nodes]

    def sound_again(after: float, *, elsewhere_than: str | None = None) -> float | None:
        return min((arrival for node, output in zip(nodes, outputs) if node.name != elsewhere_than
                    if (arrival := output.sound_again_after(after)) is not None), default=None)
    agents = {"bench-1": agent("bench-1"), "bench-2": agent("bench-2")}
    health = subprocess.Popen([sys.executable, "manage.py", "tick", "--job", "playout.health", "--for", "240"], cwd=ROOT,
                              env=os.environ)
    failovers, failovers_as_run, engine_kills = [], [], []
    try:
        wait_until(lambda: AsRunEntry.objects.filter(channel=failing, title="Filler").exists(), 60)
        for _ in range(KILLS):
            current = Channel.objects.select_related("node").get(pk=failing.pk).node.name
            victim = agents[current]
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed = timezone.now()
            heard = wait_until(lambda: sound_again(killed.timestamp(), elsewhere_than=current), 40)
            failovers.append(heard - killed.timestamp())
            back = wait_until(lambda: AsRunEntry.objects.filter(channel=failing, started_at__gt=killed, title="Filler")
                              .exclude(node__name=current).first(), 40)
            failovers_as_run.append((back.started_at - killed).total_seconds())
            agents[current] = agent(current)  # the host comes back as the next spare
            time.sleep(3)
        for _ in range(KILLS):  # the engine alone: restarted where it ran, or moved if that is slower
            host = Channel.objects.select_related("node").get(pk=failing.pk).node.name
            engine_pid = subprocess.run(["pgrep", "-P", str(agents[host].pid), "liquidsoap"], capture_output=True,
                                        text=True).stdout.split()[0]
            os.kill(int(engine_pid), signal.SIGKILL)
            killed = timezone.now()
            heard = wait_until(lambda: sound_again(killed.timestamp()), 40)
            back = wait_until(lambda: AsRunEntry.objects.filter(channel=failing, started_at__gt=killed, title="Filler")
                              .select_related("node").first(), 40)
            engine_kills.append((heard - killed.timestamp(), back.node.name == host))
            time.sleep(3)
    finally:
        health.terminate()
        for process in agents.values():
            process.terminate()
        for process in [health, *agents.values()]:
            process.wait()
        sampler.running = False

    figures = {
        "items": len(ours_stream),
        **summary("ours_stream", ours_stream),
        **summary("ours_chunk_arrival", ours_arrival),
        **summary("ours_as_run", ours_as_run),
        "baseline_items": len(baseline_stream),
        **summary("baseline_stream", baseline_stream),
        **summary("baseline_chunk_arrival", baseline_arrival),
        **summary("baseline_as_run", baseline_as_run),
        "failover_kill_to_sound_seconds": [round(f, 2) for f in failovers],
        "failover_kill_to_sound_seconds_max": round(max(failovers), 2),
        "failover_kill_to_as_run_seconds": [round(f, 2) for f in failovers_as_run],
        "engine_killed_to_sound_seconds": [round(seconds, 2) for seconds, _ in engine_kills],
        "engine_killed_back_on_same_node": [same for _, same in engine_kills],
        **sampler.figures(),
    }
    goal = {"stream_abs_error_ms_p99": 5, "stream_error_ms_min": -1, "failover_kill_to_sound_seconds_max": 10}
    met = (len(ours_stream) >= ITEMS and figures["ours_stream_abs_error_ms_p99"] <= 5
           and figures["ours_stream_error_ms_min"] >= -1 and figures["failover_kill_to_sound_seconds_max"] <= 10
           and max(seconds for seconds, _ in engine_kills) <= 10)
    print(json.dumps({"bench": "playout_accuracy", "figures": figures, "goal": goal, "met": met}))


if __name__ == "__main__":
    main()
