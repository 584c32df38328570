"""A recording host cut off from the database: its lease lapses, another host takes the window, and when the network
returns it writes nothing more of it. Hosts are network namespaces on this machine (station.tests.hosts)."""

import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from recorders.models import RecorderSchedule, RecordingSession
from recorders.tests.clock_source import ClockSource
from recorders.tests.test_capture import FRAME, RECONNECTED, _children, _clicks_on_the_clock, _ended, _running, _window
from station.embedded_db import database_url
from station.tests.hosts import Hosts
from station.tests.processes import database_env, spawn_manage, stop, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
Status = RecorderSchedule.Status
# Short leases and a quick give-up on a silent database connection, so the test takes seconds.
FAST = {"AGENT_LEASE_SECONDS": 3, "AGENT_HEARTBEAT_SECONDS": 0.5, "AGENT_REARM_SECONDS": 0.5,
        "DATABASE_TCP_TIMEOUT_SECONDS": 2}


@pytest.fixture
def hosts(settings):
    with Hosts(2, database_url=database_url(connection.settings_dict)) as made:
        settings.OUTBOUND_ALLOWED_NETWORKS = [str(made.lan)]  # the sources the hosts record are on their network
        yield made


@pytest.fixture
def clock_on_lan(hosts, tmp_path):
    source = ClockSource(tmp_path / "clock", address=hosts.root_address)
    yield source
    source.close()


def _agent(host, hosts) -> subprocess.Popen:
    env = database_env(DATABASE_URL=host.database_url, OUTBOUND_ALLOWED_NETWORKS=str(hosts.lan), **FAST)
    return spawn_manage("run_node", "--name", host.name, env=env, host=host)


def test_a_host_cut_off_from_the_database_hands_its_window_over_and_stops_its_ffmpegs_once_back(hosts, clock_on_lan):
    first_host, second_host = hosts.hosts
    first = _agent(first_host, hosts)
    second = None
    try:
        window = _window(clock_on_lan, starts_in=6, lasts=20)
        running = wait_until(lambda: (s := RecorderSchedule.objects.get(pk=window.pk)).status == Status.RUNNING and s,
                             timeout=20, message="running on host-1")
        second = _agent(second_host, hosts)
        wait_until(lambda: timezone.now() > window.start_at + timedelta(seconds=3), timeout=15)
        ffmpegs = _children(first, "ffmpeg")
        assert len(ffmpegs) == 2

        hosts.cut_database(first_host)  # host-1 still hears the source; only the database is gone
        cut_at = timezone.now()
        taken = wait_until(lambda: (s := RecorderSchedule.objects.get(pk=window.pk)).claimed_by != running.claimed_by
                           and s, timeout=15, message="the window taken over by host-2")
        assert all(_running(pid) for pid in ffmpegs)  # cut off, host-1 cannot know: it records on, writing nothing
        time.sleep(max(0.0, 8 - (timezone.now() - cut_at).total_seconds()))
        hosts.restore_database(first_host)
        restored_at = time.monotonic()
        wait_until(lambda: not any(_running(pid) for pid in ffmpegs), timeout=20, interval=0.05,
                   message="host-1's ffmpegs stopped")
        stopped_after = time.monotonic() - restored_at

        done = _ended(window, timeout=40)
        assert first.poll() is None  # back on the network, host-1 serves on
    finally:
        stop(first, *([second] if second else []))

    # its failed connection gives up within 2 s; it reconnects within its backoff (at most 5 s), and its
    # first pass back finds the window's lease epoch is not its own
    assert stopped_after < 2 + 5 + 1
    assert done.status == Status.COMPLETED, done.error_message
    assert (done.claimed_by, done.lease_epoch) == (taken.claimed_by, taken.lease_epoch)
    assert RecordingSession.objects.filter(schedule=window).count() == 1
    assert done.session.asset.duration_seconds == pytest.approx(20, abs=FRAME)
    assert len(done.session.gaps) <= 1  # where host-1 stopped writing (its lease lapsed) until host-2's audio
    for gap_start, gap_end in ([datetime.fromisoformat(moment) for moment in gap[:2]] for gap in done.session.gaps):
        assert cut_at - timedelta(seconds=1) < gap_start < cut_at + timedelta(seconds=FAST["AGENT_LEASE_SECONDS"])
    heard = _clicks_on_the_clock(done, within=RECONNECTED)
    assert any(second < cut_at.timestamp() for second in heard)
    assert any(second > cut_at.timestamp() + 8 for second in heard)
    assert sorted(path.name for path in Path(done.session.asset.file.path).parent.iterdir()) == ["recording.wav"]
