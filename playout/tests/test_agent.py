"""The agent's playout roles, each alone: no engine, no database."""

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from playout.agent.as_run import AsRunLog
from playout.agent import crashes
from playout.agent.crashes import CRASH_WINDOW_SECONDS, CRASHES_BEFORE_RESTING, REST_SECONDS, CrashPolicy
from playout.agent.dispatch import LATE_START_SECONDS, cue_out, gate_opens_at
from playout.liquidsoap import FRAME_SECONDS, StreamClock


def test_an_item_on_time_opens_the_gate_half_a_frame_into_the_frame_before_its_own_and_a_late_one_at_once():
    now = datetime.now(tz=UTC)
    clock = StreamClock()
    clock.on_air_at(now.timestamp() - 30.0004, 0.0)  # the stream's position 0 was 30 s ago
    clock.on_air_at(now.timestamp() - 30 + 20 * FRAME_SECONDS + 0.003, 20 * FRAME_SECONDS)  # a report 3 ms late
    start = now.timestamp() - 30.0004
    on_time = SimpleNamespace(start_at=now + timedelta(seconds=1), end_at=now + timedelta(seconds=61), cue_in_seconds=2.0)
    late = SimpleNamespace(start_at=now - timedelta(seconds=LATE_START_SECONDS + 1.5))

    opens_at, advance = gate_opens_at(on_time, now, clock)
    assert advance == 0.0
    slot = on_time.start_at.timestamp() - start  # where its slot falls in the stream
    first_frame = opens_at + 1.5 * FRAME_SECONDS  # the frame it goes on air on: the first at or after its slot
    assert slot - 1e-6 <= first_frame < slot + FRAME_SECONDS
    assert abs(first_frame / FRAME_SECONDS - round(first_frame / FRAME_SECONDS)) < 1e-6
    # it lasts its slot's frames (half a frame more asked for: the engine leaves a part frame out)
    frames = (cue_out(on_time, clock, advance) - 2.0) / FRAME_SECONDS
    assert frames - 0.5 == round(frames - 0.5) and abs((frames - 0.5) * FRAME_SECONDS - 60) < FRAME_SECONDS

    opens_at, advance = gate_opens_at(late, now, clock)
    assert (opens_at, advance) == (0.0, LATE_START_SECONDS + 1.5)
    assert gate_opens_at(on_time, now, StreamClock()) == (0.0, 0.0)  # no report yet: now (the agent waits for one)


def test_a_report_replaced_within_the_settling_time_is_never_logged():
    log = AsRunLog()
    long_ago = time.time() - 10
    for channel_id, at in [(1, long_ago), (1, long_ago + 0.05), (2, long_ago + 0.01), (1, long_ago + 0.3), (1, time.time())]:
        log.reports.put((channel_id, {}, at, 0))

    assert [(r[0], r[2]) for r in log.settled()] == [(1, long_ago + 0.05), (2, long_ago + 0.01), (1, long_ago + 0.3)]
    assert [r[0] for r in log.pending] == [1]  # the newest waits for its settling time


def test_an_engine_that_keeps_dying_rests_for_longer_each_loop_and_is_tried_again(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(crashes.time, "monotonic", lambda: clock[0])
    policy = CrashPolicy()
    channel = SimpleNamespace(pk=7, restart_count=2)
    running = SimpleNamespace(channel=channel, epoch=5, engine=SimpleNamespace(last_words=lambda: "oops"))

    assert [policy.engine_died(running) for _ in range(CRASHES_BEFORE_RESTING)] == [None, None, REST_SECONDS[0]]
    wanted = {7: channel}
    policy.drop_given_up(wanted)
    assert wanted == {}  # not started here while it rests
    assert policy.rested() == []
    clock[0] += REST_SECONDS[0]
    assert policy.rested() == [(7, 2, 5)]  # tried again (the database says whether it still may be)

    assert [policy.engine_died(running) for _ in range(CRASHES_BEFORE_RESTING)][-1] == REST_SECONDS[1]  # a longer rest
    clock[0] += REST_SECONDS[1] + 10 * CRASH_WINDOW_SECONDS  # then it ran well for a long while
    policy.rested()
    assert [policy.engine_died(running) for _ in range(CRASHES_BEFORE_RESTING)][-1] == REST_SECONDS[0]


