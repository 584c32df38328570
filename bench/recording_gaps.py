"""Windows with gaps: `completed` within 2 s of the window's end, the gap at its place, the asset exactly the window.

- live, end to end: a real node agent records 12 s windows on two recorders (MP3, WAV) from the
  clock-marked source (recorders/tests/clock_source.py, in its own process), which drops for 3 s
  4.5 s into each window, 3 rounds. Figures: when the database the API and the dashboard read says
  `completed` (polled every 10 ms) against the window's end; where the recorded gap begins against
  the drop; the asset's first sample and each click after the gap against the wall clock, read
  from its clicks; its length.
- an hour: the figure that grows with the window. A 59-minute window with three gaps (30 s, 5 min
  and the source gone for its last minute) is written as the agent writes it (the audio fed as
  fast as ffmpeg encodes it, the gaps as the agent fills them), then finished as at the window's
  end: its file finished, the window stopped and finalized through the services the agent calls,
  against the database. Also the same window taken over after its first gap from an agent killed
  with its encoder. Baseline, the same audio as the engine wrote it before: one file per run,
  decoded and encoded again into the window's asset when it closes.

Run: .venv/bin/python bench/recording_gaps.py   (starts the embedded PostgreSQL itself)
"""

import json
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta

from bench_support import ROOT, percentile, wait_until
from recording_accuracy import errors_ms, recording_station, start_clock_and_django, summary

sys.path.insert(0, str(ROOT))
WORK = ROOT / "var" / "bench-recording-gaps"
ROUNDS, WINDOW_SECONDS, DROP_AFTER, DROP_SECONDS = 3, 12, 4.5, 3
HOUR_WINDOW = timedelta(minutes=59)
# (audio from, audio until) minutes into the hour window: what the source sent; the rest are its gaps
HOUR_AUDIO = [(0, 20), (20.5, 40), (45, 58)]
GOAL_COMPLETED_S, GOAL_MS = 2, 30


def live_rounds(control, recorders, node) -> list[tuple[object, float, float]]:
    """Each round's windows, with the instant the source dropped and when each was seen completed."""
    from recorders.models import RecorderSchedule
    from station.models import Node

    wait_until(lambda: Node.objects.get(pk=node.pk).is_online(), 60, "the agent")
    results = []
    for _round in range(ROUNDS):
        start = time.time() + 7  # the agent connects 5 s ahead
        windows = [RecorderSchedule.objects.create(
            recorder=recorder, name=f"w{_round}-{n}", start_at=datetime.fromtimestamp(start + 0.2 * n, tz=UTC),
            end_at=datetime.fromtimestamp(start + 0.2 * n + WINDOW_SECONDS, tz=UTC)) for n, recorder in enumerate(recorders)]
        time.sleep(max(0.0, start + DROP_AFTER - time.time()))
        dropped_at = time.time()
        control.send(DROP_SECONDS)
        completed: dict[int, float] = {}
        deadline = start + WINDOW_SECONDS + 60
        while time.time() < deadline and len(completed) < len(windows):
            now = time.time()
            for pk in RecorderSchedule.objects.filter(pk__in=[w.pk for w in windows],
                                                      status__in=["completed", "failed"]).values_list("pk", flat=True):
                completed.setdefault(pk, now)
            time.sleep(0.01)
        results += [(window, dropped_at, completed.get(window.pk)) for window in windows]
    return results


def finalized_hour(recorder, node, output_format: str, *, way: str) -> dict:
    """Record the hour window one way and finish it as at its end; how long until it reads completed.

    ``ours``: one agent. ``takeover``: its agent killed after the first stretch of audio, another
    takes the window over (its file starts with the first one's, taken in while it records).
    ``baseline``: a file per run, encoded again into the window's asset at its end."""
    from recorders import engine, services
    from recorders.models import RecorderSchedule
    from recorders.tests.clock_source import SAMPLE_RATE, _click_track

    end = datetime.now(UTC).replace(microsecond=0)
    schedule = RecorderSchedule.objects.create(recorder=recorder, name=f"hour {output_format} {way}",
                                               start_at=end - HOUR_WINDOW, end_at=end)
    owner = "bench-hour/1"
    schedule = services.schedule_claim(schedule_id=schedule.pk, owner=owner, node=node, now=schedule.start_at)
    services.recording_started(schedule=schedule, epoch=schedule.lease_epoch, now=schedule.start_at,
                               data_since=schedule.start_at)
    mono = _click_track(1)
    stereo = b"".join(mono[i:i + 2] * 2 for i in range(0, len(mono), 2))
    window = (schedule.record_from.timestamp(), schedule.record_until.timestamp())
    directory = services.recording_directory(schedule)

    def window_file(**kwargs):
        return engine.WindowFile(directory=directory, output_format=output_format, segment_seconds=600, window=window,
                                 **kwargs)

    if way in ("ours", "takeover"):
        file = window_file()
        for n, (first, until) in enumerate(HOUR_AUDIO):
            if n == 1 and way == "takeover":
                file.encoder.process.kill()  # with its agent: nothing finished, nothing noted
                file = window_file(earlier=engine.recorded_pieces(directory))
                file.taking_in.join()  # meanwhile the runs' audio waits in memory; here it comes after
            file.pad_until(round((first * 60 - 10) * SAMPLE_RATE))  # 10 s behind the clock, as the loop does
            for second in range(int(first * 60), int(until * 60)):
                file.write(second * SAMPLE_RATE, stereo)
        file.pad_until(round((window[1] - window[0] - 10) * SAMPLE_RATE))  # the loop, in the gap at the end
        ended = time.time()  # the window's end, as the agent meets it
        file.finish()
    else:  # the engine before: a file per run, from its first sample, finished when its run ended
        for first, until in HOUR_AUDIO:
            file = window_file(from_start=False)
            for second in range(int(first * 60), int(until * 60)):
                file.write(second * SAMPLE_RATE, stereo)
            file.finish(to_window_end=False)
        ended = time.time()
    schedule.refresh_from_db()
    services.schedule_begin_stop(schedule=schedule, epoch=schedule.lease_epoch, now=end)
    schedule.refresh_from_db()
    services.recording_finalize(schedule=schedule, stopped_at=end)
    done = RecorderSchedule.objects.select_related("session__asset").get(pk=schedule.pk)
    lag = time.time() - ended
    return {"status": done.status, "completed_after_end_s": round(lag, 2),
            "length_error_ms": round((done.session.asset.duration_seconds - HOUR_WINDOW.total_seconds()) * 1000, 1),
            "gaps": len(done.session.gaps)}


def click_errors_ms(path, start: float, after: float, epoch: float) -> list[float] | None:
    """How far from its wall-clock second each whole click after ``after`` (epoch seconds) is; None if one names
    another second."""
    from recorders.tests.audio import decoded
    from recorders.tests.clock_source import clicks

    errors = []
    for onset, mark in clicks(decoded(path)):
        heard_at = start + onset
        if heard_at < after + 0.05 or heard_at > start + WINDOW_SECONDS - 0.1:
            continue  # the gap's end or the window's may cut it, and a cut click names another second
        second = round(heard_at)
        if (second - round(epoch)) % 8 != mark:
            return None
        errors.append((heard_at - second) * 1000)
    return errors


def main() -> None:
    clock, url, epoch, control = start_clock_and_django(WORK, "bench_recording_gaps")
    node, recorders, sampler, agent = recording_station(url, ["mp3", "wav"])
    try:
        live = live_rounds(control, recorders, node)
    finally:
        agent.send_signal(signal.SIGINT)
        agent.wait(timeout=30)
    clock.terminate()

    completed_lag, gap_start_ms, gap_lengths, starts, ends, lengths, unread = [], [], [], [], [], [], []
    for window, dropped_at, completed_at in live:
        window.refresh_from_db()
        if window.status != "completed" or completed_at is None:
            unread.append(f"{window.name}: {window.status} {window.error_message}")
            continue
        completed_lag.append(completed_at - window.end_at.timestamp())
        session, gap_end = window.session, None
        if len(session.gaps) != 1:
            unread.append(f"{window.name}: gaps {session.gaps}")
        else:
            gap_start, gap_end = (datetime.fromisoformat(moment).timestamp() for moment in session.gaps[0][:2])
            gap_start_ms.append((gap_start - dropped_at) * 1000)
            gap_lengths.append(gap_end - gap_start)
        found = errors_ms(epoch, session.asset.file.path, window.start_at.timestamp(), window.end_at.timestamp())
        after_gap = click_errors_ms(session.asset.file.path, window.start_at.timestamp(), gap_end, epoch) if gap_end else []
        if found is None or not after_gap:
            unread.append(f"{window.name}: its clicks not read ({found}, {after_gap})")
        else:
            starts.append(found[0])
            ends.extend(after_gap)
        lengths.append((session.asset.duration_seconds - WINDOW_SECONDS) * 1000)

    hour = {}
    sampler.pids.add(os.getpid())  # the hour's files are written and finished from here, as the agent would
    for output_format, recorder in zip(("mp3", "wav"), recorders):
        for way in ("ours", "takeover", "baseline"):
            hour[f"{way}_{output_format}"] = finalized_hour(recorder, node, output_format, way=way)
    sampler.running = False

    figures = {
        "live_windows": len(live), "measured": len(starts),
        "live_completed_after_end_s_p50": round(percentile(completed_lag, 0.5), 2) if completed_lag else None,
        "live_completed_after_end_s_max": round(max(completed_lag), 2) if completed_lag else None,
        "gap_start_vs_drop_ms_max": round(max(gap_start_ms, key=abs), 1) if gap_start_ms else None,
        "gap_seconds_min": round(min(gap_lengths), 2) if gap_lengths else None,
        "gap_seconds_max": round(max(gap_lengths), 2) if gap_lengths else None,
        **summary("start_error", starts or [0]), **summary("click_error_after_gap", ends or [0]),
        **summary("length_error", lengths or [0]),
        "hour_window": hour,
        "not_measured": unread,
        **sampler.figures(),
    }
    ours_hour = [figures for name, figures in hour.items() if not name.startswith("baseline")]
    goal = {"completed_after_end_s_max": GOAL_COMPLETED_S, "start_error_abs_ms_max": GOAL_MS,
            "click_error_after_gap_abs_ms_max": GOAL_MS, "length_error_abs_ms_max": GOAL_MS}
    met = (not unread and len(starts) == len(live)
           and figures["live_completed_after_end_s_max"] <= GOAL_COMPLETED_S
           and all(h["status"] == "completed" and h["completed_after_end_s"] <= GOAL_COMPLETED_S
                   and abs(h["length_error_ms"]) <= GOAL_MS for h in ours_hour)
           and figures["start_error_abs_ms_max"] <= GOAL_MS and figures["click_error_after_gap_abs_ms_max"] <= GOAL_MS
           and figures["length_error_abs_ms_max"] <= GOAL_MS)
    print(json.dumps({"bench": "recording_gaps", "figures": figures, "goal": goal, "met": met}))


if __name__ == "__main__":
    main()
