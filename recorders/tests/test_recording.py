"""Real recordings: node agents running ffmpeg against real sources, on the real database."""

from datetime import datetime, timedelta
from pathlib import Path

import psutil
import pytest
from django.utils import timezone

from ingest.models import MediaAsset
from recorders import services
from recorders.models import RecorderSchedule, RecordingSession
from recorders.tests.audio import decoded, sound_spans
from recorders.tests.stream_server import PacedStream, closed_port
from station.tests.factories import RecorderFactory, ScheduleFactory
from station.tests.processes import spawn_manage, stop, database_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("loopback_allowed")]
Status = RecorderSchedule.Status
TERMINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.MISSED)


@pytest.fixture
def stream(tmp_path):
    server = PacedStream(tmp_path)
    yield server
    server.close()


def _reload(schedule):
    return RecorderSchedule.objects.select_related("session__asset").get(pk=schedule.pk)


def _finished(schedule):
    fresh = _reload(schedule)
    return fresh if fresh.status in TERMINAL else None


def _window_from_now(recorder, *, starts_in: float, lasts: float) -> RecorderSchedule:
    start = timezone.now() + timedelta(seconds=starts_in)
    return ScheduleFactory(recorder=recorder, start_at=start, end_at=start + timedelta(seconds=lasts))


def _ffmpegs_writing(schedule) -> list[psutil.Process]:
    """The encoders writing the window's files (they run in its directory)."""
    marker = f"schedule-{schedule.pk}"
    return [process for process in psutil.process_iter(["name", "cwd"])
            if process.info["name"] == "ffmpeg" and (process.info["cwd"] or "").endswith(marker)]


def test_agent_records_a_live_stream_on_time_into_an_asset_of_the_window_length(agents, stream):
    agents("host-1")
    recorder = RecorderFactory(source_url=stream.url)
    wait_until(lambda: _node_online("host-1"), timeout=20, message="agent up")
    schedule = _window_from_now(recorder, starts_in=1.5, lasts=5)

    done = wait_until(lambda: _finished(schedule), timeout=30, message="recording to finish")

    assert done.status == Status.COMPLETED, done.error_message
    session = done.session
    # armed by NOTIFY and fired by the agent's clock, not found by a poll (the tick only reports it 10 s late)
    assert abs((session.started_at - schedule.start_at).total_seconds()) < 2
    asset = session.asset
    assert asset.status == MediaAsset.Status.READY
    assert asset.duration_seconds == pytest.approx(5.0, abs=0.5)
    assert asset.format_name == "mp3" and asset.size_bytes > 0 and len(asset.checksum) == 64
    assert session.gaps == []


def test_a_source_that_cannot_be_opened_fails_with_ffmpegs_reason(agents):
    agents("host-1")
    recorder = RecorderFactory(source_url=f"http://127.0.0.1:{closed_port()}/live.mp3")
    schedule = _window_from_now(recorder, starts_in=1, lasts=30)

    done = wait_until(lambda: _finished(schedule), timeout=30, message="the start to fail")

    assert done.status == Status.FAILED
    assert "Connection refused" in done.error_message
    assert done.session.status == RecordingSession.Status.FAILED
    assert done.session.asset.status == MediaAsset.Status.ERROR


def test_cancelling_a_running_recording_stops_ffmpeg_and_keeps_what_was_recorded(agents, stream):
    agents("host-1")
    recorder = RecorderFactory(source_url=stream.url)
    wait_until(lambda: _node_online("host-1"), timeout=20, message="agent up")
    schedule = _window_from_now(recorder, starts_in=1, lasts=300)
    wait_until(lambda: _reload(schedule).status == Status.RUNNING, timeout=20, message="running")
    wait_until(lambda: _ffmpegs_writing(schedule), timeout=5, message="ffmpeg running")
    # 4 s in: what was recorded is at least 2.5 s, however long ffmpeg took to start on a busy machine
    wait_until(lambda: timezone.now() > schedule.start_at + timedelta(seconds=4), timeout=6)

    services.schedule_cancel(schedule=_reload(schedule))

    wait_until(lambda: not _ffmpegs_writing(schedule), timeout=5, message="ffmpeg to stop")
    session = wait_until(
        lambda: RecordingSession.objects.filter(schedule=schedule, status=RecordingSession.Status.COMPLETED).first(),
        timeout=10, message="session to close",
    )
    assert _reload(schedule).status == Status.CANCELLED
    assert session.asset.status == MediaAsset.Status.READY
    assert 2.5 < session.asset.duration_seconds < 6


def _assert_the_audio_sits_on_the_wall_clock(done, gap_start, gap_end):
    """The asset holds the whole window: sound, the gap as silence of its length at its place, sound to the end."""
    asset = done.session.asset
    window = (done.end_at - done.start_at).total_seconds()
    assert asset.duration_seconds == pytest.approx(window, abs=0.05)
    (_, before_gap), (after_gap, end) = sound_spans(decoded(Path(asset.file.path)))
    assert before_gap == pytest.approx((gap_start - done.start_at).total_seconds(), abs=0.1)
    assert after_gap == pytest.approx((gap_end - done.start_at).total_seconds(), abs=0.1)
    assert end == pytest.approx(window, abs=0.05)


def _node_online(name: str) -> bool:
    from station.models import Node

    node = Node.objects.filter(name=name).first()
    return bool(node and node.is_online())


def test_three_ticks_and_two_agents_racing_over_300_windows_record_each_exactly_once(agents, media_root):
    """Every window gets exactly one session and ends completed, however the claims race."""
    # Sources connected 1.5 s ahead, not the default 5 s: each recorder then has one ffmpeg running at a time, not
    # two or three, so a shared 2-core machine under other load still starts every one in time. The ticks pass each
    # second (the default is 2 s): with three ticking every 0.2 s their queries took the CPU the ffmpegs starting
    # needed, and with two busy loops beside the test 30 windows recorded nothing (none now, with four: it took 142 s).
    fast = {"AGENT_HEARTBEAT_SECONDS": 0.5, "AGENT_REARM_SECONDS": 1, "TICK_INTERVAL_SECONDS": 1,
            "RECORDER_CONNECT_AHEAD_SECONDS": 1.5}
    agents("host-1", **fast)
    agents("host-2", **fast)
    # The windows end 97 s in; their finishing, at nice 10, runs later on a loaded machine.
    ticks = [spawn_manage("tick", "--for", "240", env=database_env(**fast)) for _ in range(3)]
    try:
        # 10 recorders × 30 windows 3 s apart: about 10 ffmpegs at a time, what 2 cores sustain. With windows 2 s
        # apart the agents' finishing fell seconds behind on a busy 2-core machine and some windows recorded nothing.
        recorders = [RecorderFactory(source_url="tone:440", output_format="wav") for _ in range(10)]
        first = timezone.now() + timedelta(seconds=8)  # the agents just started: time to arm the first slot
        windows = []
        for slot in range(30):
            start = first + timedelta(seconds=3 * slot)
            windows += [
                RecorderSchedule(recorder=r, name=f"w{slot}", start_at=start, end_at=start + timedelta(seconds=1.5))
                for r in recorders
            ]
        RecorderSchedule.objects.bulk_create(windows)

        wait_until(
            lambda: not RecorderSchedule.objects.exclude(status__in=TERMINAL).exists(), timeout=240, interval=0.5,
            message="all 300 windows to end",
        )
    finally:
        stop(*ticks)

    statuses = dict(RecorderSchedule.objects.values_list("status").annotate(n=models_count()))
    reasons = set(RecorderSchedule.objects.exclude(status=Status.COMPLETED).values_list("error_message", flat=True))
    assert statuses == {Status.COMPLETED: 300}, reasons
    assert RecordingSession.objects.count() == 300
    assert RecordingSession.objects.filter(status=RecordingSession.Status.COMPLETED).count() == 300
    assert MediaAsset.objects.filter(status=MediaAsset.Status.READY, origin="recording").count() == 300
    # every recording starts inside its window, even with 10 starting together
    assert all(s.schedule.start_at <= s.started_at < s.schedule.end_at
               for s in RecordingSession.objects.select_related("schedule"))
    # each holds its window: sources connected ahead, cut at the window's instants, any gap silence
    durations = sorted(MediaAsset.objects.values_list("duration_seconds", flat=True))
    assert durations[0] > 1.45 and durations[-1] < 1.55, (durations[:3], durations[-3:])


def models_count():
    from django.db.models import Count

    return Count("id")


def test_an_agent_survives_a_database_blip_without_losing_or_repeating_work(agents, stream):
    from django.db import connection

    agents("host-1", AGENT_HEARTBEAT_SECONDS=0.5)
    recorder = RecorderFactory(source_url=stream.url)
    during = _window_from_now(recorder, starts_in=1.5, lasts=8)
    wait_until(lambda: _reload(during).status == Status.RUNNING, timeout=20, message="running")

    with connection.cursor() as cursor:  # drop every other session on the test database, as a restart would
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] >= 2  # the agent's LISTEN connection and its ORM connection
    after_start = timezone.now() + timedelta(seconds=3)
    after = ScheduleFactory(recorder=recorder, start_at=max(after_start, during.end_at),
                            end_at=max(after_start, during.end_at) + timedelta(seconds=3))

    for schedule, length in ((during, 8), (after, 3)):
        done = wait_until(lambda: _finished(schedule), timeout=30, message="recordings to finish")
        assert done.status == Status.COMPLETED, done.error_message
        assert done.session.asset.duration_seconds == pytest.approx(length, abs=0.6)
    assert RecordingSession.objects.count() == 2


def test_ffmpeg_dying_mid_window_is_restarted_and_the_gap_recorded(agents, stream):
    agents("host-1")
    # up before the window is made: an agent starting up more slowly than the window's 1.5 s lead (a fresh clone's
    # machine) left a second gap, at the window's start
    wait_until(lambda: _node_online("host-1"), timeout=20, message="agent up")
    recorder = RecorderFactory(source_url=stream.url)
    schedule = _window_from_now(recorder, starts_in=1.5, lasts=10)
    wait_until(lambda: _reload(schedule).status == Status.RUNNING, timeout=20, message="running")
    wait_until(lambda: timezone.now() > schedule.start_at + timedelta(seconds=3), timeout=5)
    (first,) = _ffmpegs_writing(schedule)
    first.kill()

    wait_until(lambda: [p for p in _ffmpegs_writing(schedule) if p.pid != first.pid], timeout=10, message="a new ffmpeg")
    done = wait_until(lambda: _finished(schedule), timeout=30, message="the window to finish")

    assert done.status == Status.COMPLETED, done.error_message
    assert len(done.session.gaps) == 1
    gap_start, gap_end = (datetime.fromisoformat(moment) for moment in done.session.gaps[0][:2])
    gap = (gap_end - gap_start).total_seconds()
    assert 0 < gap < 3
    _assert_the_audio_sits_on_the_wall_clock(done, gap_start, gap_end)
