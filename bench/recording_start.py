"""Recording start as a new user meets it: windows created through the REST API 4 s ahead, measured in the audio.

The issue 16 reproduction: eight 4-second windows, one after another, on a recorder whose source is a
live MP3 stream on loopback (the clock-marked source of recording_accuracy.py, with Icecast's 2 s
burst on connect), each POSTed to /api/v1/schedules/ 4 s before it starts, less than the agent's
connect-ahead: the agent connects when the window's commit notifies it. For each asset: when its
first sample was live against the window's start, its length against the window's, and when the
database said `running`. Baseline on the same source, after ours: ffmpeg opened at the window's
start and sent SIGINT at its end.

Run: .venv/bin/python bench/recording_start.py   (starts the embedded PostgreSQL itself)
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from bench_support import ROOT, RssSampler, percentile, wait_until
from recording_accuracy import baseline_record, errors_ms, note_errors, start_clock_and_django, summary

sys.path.insert(0, str(ROOT))
WORK = ROOT / "var" / "bench-recording-start"
WINDOWS, WINDOW_SECONDS, NOTICE_SECONDS = 8, 4, 4
GOAL_MS, RUNNING_GOAL_MS = 30, 250


def main() -> None:
    clock, url, epoch, _control = start_clock_and_django(WORK, "bench_recording_start")
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from recorders.models import Recorder, RecorderSchedule
    from station.models import Node, Studio, StudioMembership

    call_command("migrate", verbosity=0)
    studio = Studio.objects.create(name="Bench", slug="bench")
    node = Node.objects.create(name="bench-rec", capabilities=["record"])
    recorder = Recorder.objects.create(studio=studio, name="Live", source_url=url, node=node, output_format="mp3")
    operator = User.objects.create_user("operator")
    StudioMembership.objects.create(user=operator, studio=studio, role=StudioMembership.Role.OPERATOR)
    client = APIClient(SERVER_NAME="localhost")  # a host the station serves
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=operator).key}")
    sampler = RssSampler()
    sampler.start()
    agent = subprocess.Popen([sys.executable, "manage.py", "run_node", "--name", "bench-rec"], cwd=ROOT, env=os.environ)
    sampler.pids.add(agent.pid)
    windows, running_lag = [], []
    try:
        wait_until(lambda: Node.objects.get(pk=node.pk).is_online(), 60, "the agent")
        for n in range(WINDOWS):
            # starts wander the sub-second, so the source's frames fall differently at each
            start = datetime.now(UTC) + timedelta(seconds=NOTICE_SECONDS + 0.137 * n)
            response = client.post("/api/v1/schedules/", {
                "recorder": recorder.pk, "name": f"w{n}", "start_at": start.isoformat(),
                "end_at": (start + timedelta(seconds=WINDOW_SECONDS)).isoformat()}, format="json")
            assert response.status_code == 201, response.content
            window = RecorderSchedule.objects.get(pk=response.json()["id"])
            deadline = start.timestamp() + 20
            while time.time() < deadline and not RecorderSchedule.objects.filter(
                    pk=window.pk, status__in=["running", "stopping", "completed"]).exists():
                time.sleep(0.005)  # as the API would answer it, polled closely
            running_lag.append((time.time() - start.timestamp()) * 1000)
            wait_until(lambda: RecorderSchedule.objects.get(pk=window.pk).status in ("completed", "failed"), 30, "the end")
            windows.append(window)
    finally:
        agent.send_signal(signal.SIGINT)
        agent.wait(timeout=30)
        sampler.running = False
    first = time.time() + 3
    plan = [(first + n * (WINDOW_SECONDS + 1.137), first + n * (WINDOW_SECONDS + 1.137) + WINDOW_SECONDS)
            for n in range(WINDOWS)]
    threads = [threading.Thread(target=baseline_record, args=(url, "mp3", start, end, WORK / "baseline" / f"{n}.mp3"))
               for n, (start, end) in enumerate(plan)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    starts, ends, lengths, base_starts, base_ends, unread = [], [], [], [], [], []
    for n, window in enumerate(windows):
        window.refresh_from_db()
        if window.status != "completed":
            unread.append(f"{window.name}: {window.status} {window.error_message}")
            continue
        asset = window.session.asset
        found = errors_ms(epoch, asset.file.path, window.start_at.timestamp(), window.end_at.timestamp())
        base = errors_ms(epoch, WORK / "baseline" / f"{n}.mp3", *plan[n])
        note_errors(found, starts, ends, unread, f"{window.name} (ours)")
        note_errors(base, base_starts, base_ends, unread, f"{window.name} (baseline)")
        lengths.append((asset.duration_seconds - WINDOW_SECONDS) * 1000)

    figures = {
        "windows": WINDOWS, "notice_s": NOTICE_SECONDS, "measured": len(starts),
        **summary("ours_start_error", starts), **summary("ours_end_error", ends),
        **summary("ours_length_error", lengths),
        "running_lag_ms_p50": round(percentile(running_lag, 0.5), 1), "running_lag_ms_max": round(max(running_lag), 1),
        **summary("baseline_start_error", base_starts), **summary("baseline_end_error", base_ends),
        "not_measured": unread,
        **sampler.figures(),
    }
    goal = {"start_error_abs_ms_max": GOAL_MS, "length_error_abs_ms_max": GOAL_MS, "running_lag_ms_max": RUNNING_GOAL_MS}
    met = (not unread and figures["ours_start_error_abs_ms_max"] <= GOAL_MS
           and figures["ours_length_error_abs_ms_max"] <= GOAL_MS and figures["running_lag_ms_max"] <= RUNNING_GOAL_MS)
    clock.terminate()
    print(json.dumps({"bench": "recording_start", "figures": figures, "goal": goal, "met": met}))


if __name__ == "__main__":
    main()
