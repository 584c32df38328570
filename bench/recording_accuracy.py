"""Recording accuracy, measured in the recorded audio against a source that marks the wall clock.

- source: a live MP3 served in real time over HTTP, a click at every whole wall-clock second (its
  length names the second, so an error of seconds is still read right), and, as Icecast does, a
  burst of the last 2 s to every listener on connect (recorders/tests/clock_source.py).
- ours: 44 windows of 3–5 s on 4 recorders (2 MP3, 2 WAV) recording at once, their starts spread
  over the sub-second, recorded by a real node agent. For each asset, the clicks give the wall
  time of its first sample (start error) and of its end (end error). Also: when the database the
  API and the dashboard read says `running` (polled every 5 ms), against the window's start, and
  `completed` against its end.
- baseline, in the same run and on the same source, after ours (at once, the two would compete for
  the CPU at every window's start): the way recorders used to work (and most do): ffmpeg opens the
  stream at the window's start and is sent SIGINT at its end, for the same plan of windows.

Run: .venv/bin/python bench/recording_accuracy.py   (starts the embedded PostgreSQL itself)
"""

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

from bench_support import ROOT, RssSampler, fresh_database_url, percentile, wait_until

sys.path.insert(0, str(ROOT))
WORK = ROOT / "var" / "bench-recording"
RECORDERS = [("mp3", 0), ("wav", 1), ("mp3", 2), ("wav", 3)]
WINDOWS_PER_RECORDER = 11
GOAL_MS = 30
RUNNING_GOAL_MS = 250


def window_plan(first_start: float) -> list[tuple[int, float, float]]:
    """(recorder index, start, end) epoch seconds: back-to-back windows of 3–5 s whose starts wander the sub-second."""
    plan = []
    for recorder, _format_and_index in enumerate(RECORDERS):
        start = first_start + 0.25 * recorder
        for k in range(WINDOWS_PER_RECORDER):
            start += ((7 * k + 3 * recorder) % 10) / 10 + 0.013 * k
            length = 3 + (k + recorder) % 3
            plan.append((recorder, start, start + length))
            start += length
    return plan


def baseline_record(url: str, output_format: str, start: float, end: float, target) -> None:
    """ffmpeg opened at the window's start, stopped by SIGINT at its end."""
    time.sleep(max(0.0, start - time.time()))
    codec = ["-c:a", "libmp3lame", "-b:a", "320k"] if output_format == "mp3" else ["-c:a", "pcm_s16le"]
    process = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", url, "-vn", "-ac", "2", "-ar",
                                "44100", *codec, str(target)])
    time.sleep(max(0.0, end - time.time()))
    process.send_signal(signal.SIGINT)
    process.wait(timeout=15)


def serve_clock(directory, control) -> None:
    """The clock source in a process of its own, as an Icecast server is: the bench's own work doesn't delay it.

    Each number it is sent drops the source for that many seconds."""
    from recorders.tests.clock_source import ClockSource

    source = ClockSource(directory)
    control.send((source.url, source.epoch))
    while True:
        source.drop(control.recv())


def start_clock_and_django(work, database: str):
    """A fresh ``work`` directory, the clock source serving in its own process, Django on a fresh database.

    Returns the source's process, URL, epoch (the instant of its first click) and control (``send(3)``: drop it 3 s)."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "baseline").mkdir(parents=True)
    control, source_end = multiprocessing.Pipe()
    clock = multiprocessing.Process(target=serve_clock, args=(work / "source", source_end), daemon=True)
    clock.start()
    url, epoch = control.recv()
    os.environ.update(DATABASE_URL=fresh_database_url(database), MEDIA_ROOT=str(work / "media"),
                      DJANGO_SETTINGS_MODULE="station.settings", LOG_LEVEL="WARNING",
                      OUTBOUND_ALLOWED_NETWORKS="127.0.0.1/32")  # the clock source is on loopback, as the admin allows
    import django

    django.setup()
    return clock, url, epoch, control


def recording_station(url: str, output_formats: list[str]):
    """On the fresh database: a studio, a recording node, a recorder per format on ``url``, and a real node agent,
    its memory sampled. Returns the node, the recorders, the sampler and the agent's process."""
    from django.core.management import call_command

    from recorders.models import Recorder
    from station.models import Node, Studio

    call_command("migrate", verbosity=0)
    studio = Studio.objects.create(name="Bench", slug="bench")
    node = Node.objects.create(name="bench-rec", capabilities=["record"])
    recorders = [Recorder.objects.create(studio=studio, name=f"R{n} {output_format}", source_url=url, node=node,
                                         output_format=output_format) for n, output_format in enumerate(output_formats)]
    sampler = RssSampler()
    sampler.start()
    agent = subprocess.Popen([sys.executable, "manage.py", "run_node", "--name", "bench-rec"], cwd=ROOT, env=os.environ)
    sampler.pids.add(agent.pid)
    return node, recorders, sampler, agent


def errors_ms(epoch: float, path, start: float, end: float) -> tuple[float, float] | None:
    from recorders.tests.audio import decoded
    from recorders.tests.clock_source import first_sample_instant

    samples = decoded(path)
    first = first_sample_instant(samples, epoch=epoch, around=start)
    if first is None:
        return None
    return (first - start) * 1000, (first + len(samples) / 44100 - end) * 1000


def note_errors(found: tuple[float, float] | None, starts: list, ends: list, unread: list, what: str) -> None:
    """An asset's start and end errors into their lists, or ``what`` among those whose clicks could not be read."""
    if found is None:
        unread.append(f"{what}: no click found")
    else:
        starts.append(found[0])
        ends.append(found[1])


def summary(prefix: str, values: list[float]) -> dict:
    magnitudes = [abs(v) for v in values]
    return {f"{prefix}_ms_p50": round(percentile(values, 0.5), 1), f"{prefix}_abs_ms_p99": round(percentile(magnitudes, 0.99), 1),
            f"{prefix}_abs_ms_max": round(max(magnitudes), 1)}


def record(node, recorders, url: str):
    """Plan the windows, record them, and note when each was seen running and ended; then the baseline, on its own
    (started at once, its ffmpegs' start-up would compete with ours for the CPU)."""
    from recorders.models import RecorderSchedule
    from station.models import Node

    wait_until(lambda: Node.objects.get(pk=node.pk).is_online(), 60, "the agent")

    plan = window_plan(time.time() + 8)
    windows = RecorderSchedule.objects.bulk_create(
        RecorderSchedule(recorder=recorders[r], name=f"w{n}", start_at=datetime.fromtimestamp(start, tz=UTC),
                         end_at=datetime.fromtimestamp(end, tz=UTC))
        for n, (r, start, end) in enumerate(plan)
    )
    # when the rows the API and the dashboard read say running and completed
    seen: dict[str, dict[int, float]] = {"running": {}, "completed": {}}
    ids = [w.pk for w in windows]
    deadline = plan[-1][2] + 60
    while time.time() < deadline and len(seen["completed"]) < len(ids):
        rows = list(RecorderSchedule.objects.filter(pk__in=ids).values_list("id", "status"))
        now = time.time()
        for pk, status in rows:
            if status in ("running", "stopping", "completed"):
                seen["running"].setdefault(pk, now)
            if status in ("completed", "failed", "missed", "cancelled"):
                seen["completed"].setdefault(pk, now)
        time.sleep(0.005)
    baseline_plan = window_plan(time.time() + 3)
    baseline_threads = [
        threading.Thread(target=baseline_record, daemon=True,
                         args=(url, RECORDERS[r][0], start, end, WORK / "baseline" / f"{n}.{RECORDERS[r][0]}"))
        for n, (r, start, end) in enumerate(baseline_plan)
    ]
    for thread in baseline_threads:
        thread.start()
    for thread in baseline_threads:
        thread.join(timeout=baseline_plan[-1][2] - time.time() + 20)
    return seen, windows, plan, baseline_plan


def main() -> None:
    clock, url, epoch, _control = start_clock_and_django(WORK, "bench_recording")
    node, recorders, sampler, agent = recording_station(url, [output_format for output_format, _index in RECORDERS])
    try:
        seen, windows, plan, baseline_plan = record(node, recorders, url)
    finally:
        agent.send_signal(signal.SIGINT)
        agent.wait(timeout=30)
        sampler.running = False
    ours_start, ours_end, base_start, base_end, running_lag, completed_lag, unread = [], [], [], [], [], [], []
    for n, window in enumerate(windows):
        window.refresh_from_db()
        start, end = plan[n][1], plan[n][2]
        if window.status != "completed":
            unread.append(f"{window.name}: {window.status} {window.error_message}")
            continue
        running_lag.append((seen["running"][window.pk] - start) * 1000)
        completed_lag.append(seen["completed"][window.pk] - end)
        ours = errors_ms(epoch, window.session.asset.file.path, start, end)
        base = errors_ms(epoch, WORK / "baseline" / f"{n}.{RECORDERS[plan[n][0]][0]}", *baseline_plan[n][1:])
        note_errors(ours, ours_start, ours_end, unread, f"{window.name} (ours)")
        note_errors(base, base_start, base_end, unread, f"{window.name} (baseline)")

    figures = {
        "windows": len(windows), "recorders": len(RECORDERS), "measured": len(ours_start),
        **summary("ours_start_error", ours_start), **summary("ours_end_error", ours_end),
        "running_lag_ms_p50": round(percentile(running_lag, 0.5), 1),
        "running_lag_ms_p99": round(percentile(running_lag, 0.99), 1),
        "running_lag_ms_max": round(max(running_lag), 1),
        "completed_after_end_s_p99": round(percentile(completed_lag, 0.99), 2),
        "completed_after_end_s_max": round(max(completed_lag), 2),
        **summary("baseline_start_error", base_start), **summary("baseline_end_error", base_end),
        "not_measured": unread,
        **sampler.figures(),
    }
    goal = {"start_error_abs_ms_p99": GOAL_MS, "end_error_abs_ms_p99": GOAL_MS, "running_lag_ms_p99": RUNNING_GOAL_MS,
            "completed_after_end_s": 2}
    met = (not unread and figures["ours_start_error_abs_ms_p99"] <= GOAL_MS and figures["ours_end_error_abs_ms_p99"] <= GOAL_MS
           and figures["running_lag_ms_p99"] <= RUNNING_GOAL_MS and figures["completed_after_end_s_max"] <= 2)
    clock.terminate()
    print(json.dumps({"bench": "recording_accuracy", "figures": figures, "goal": goal, "met": met}))


if __name__ == "__main__":
    main()
