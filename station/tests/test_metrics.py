"""Prometheus metrics: declared once, counted where things happen, served by each kind of process and guarded."""

import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import timedelta

import psutil
import pytest
import requests
from django.conf import settings
from django.utils import timezone
from django_q.tasks import async_task
from prometheus_client import REGISTRY
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from playout.models import AsRunEntry, Channel, PlaylistItem, ScheduledItem
from playout.services import channels_check_health
from playout.tests.test_engine import _back_on_air, _channel_on_air, _engine_pid, _tone
from recorders import services as recorder_services
from recorders.models import RecorderSchedule
from recorders.tests.stream_server import closed_port
from station import launcher
from station.metrics import SharedDirectory
from station.periodic import run_exclusively
from station.tests.factories import ChannelFactory, NodeFactory, PlaylistFactory, RecorderFactory, ScheduleFactory, \
    ShowInstanceFactory
from station.tests.processes import database_env, spawn_manage, stop, wait_until

TOKEN = "scrape-me"
DOCS = settings.BASE_DIR / "docs"


def _documented_name(family) -> str:
    return family.name + ("_total" if family.type == "counter" else "")


def _sample_names(family) -> set[str]:
    """The names a family's samples are scraped under (what a dashboard queries)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
    return {family.name + suffix for suffix in suffixes}


def _station_families():
    return [family for family in REGISTRY.collect() if family.name.startswith("stationkeeper_")]


def _scrape(url: str, token: str | None = TOKEN) -> dict:
    """``(sample name, labels) → value`` of an endpoint's answer."""
    response = requests.get(url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=5)
    response.raise_for_status()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def _value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _scrape_until(url: str, predicate, *, message: str, timeout: float = 15, token: str | None = TOKEN) -> dict:
    """Scrape until ``predicate(samples)`` holds; return those samples."""
    def holding():
        samples = _scrape(url, token)
        return samples if predicate(samples) else None

    return wait_until(holding, timeout=timeout, message=message)


def _scraped(url: str) -> bool:
    try:
        return bool(_scrape(url))
    except requests.RequestException:
        return False


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:  # refused, or waiting in the socket's backlog while Daphne starts
        return False


def _in_process(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- declared once, documented, on the dashboard --------------------------------------------------------------------

def test_every_metric_is_the_stations_says_what_it_counts_and_is_documented():
    documented = (DOCS / "metrics.md").read_text()
    families = _station_families()

    assert len(families) == 15
    for family in families:
        assert family.documentation.endswith("."), family.name
        assert f"`{_documented_name(family)}`" in documented, family.name


def test_the_grafana_dashboard_queries_only_metrics_the_station_serves_and_shows_each():
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    queries = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []))
    served = {name for family in REGISTRY.collect() for name in _sample_names(family)}

    queried = set(re.findall(r"\b(?:stationkeeper|process)_[a-z_]+", queries))
    assert queried - served == set()
    assert [family.name for family in _station_families() if not _sample_names(family) & queried] == []


# -- the web endpoint's guard, and requests counted -----------------------------------------------------------------

@pytest.mark.django_db
def test_the_web_serves_metrics_only_to_a_scraper_with_the_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404  # no token set: nobody (behind a proxy, all comes from loopback)

    settings.METRICS_TOKEN = TOKEN
    for refused in ({}, {"HTTP_AUTHORIZATION": "Bearer"}, {"HTTP_AUTHORIZATION": "Bearer wrong"},
                    {"HTTP_AUTHORIZATION": f"Token {TOKEN}"}):
        response = client.get("/metrics", **refused)
        assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer"), refused
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert "stationkeeper_http_requests_total" in response.content.decode()


@pytest.mark.django_db
def test_requests_are_counted_by_method_url_pattern_and_status_and_a_made_up_method_mints_no_series(client):
    answered = {"name": "stationkeeper_http_requests_total", "method": "GET", "route": "healthz", "status": "200"}
    before = _in_process(**answered)
    timed = _in_process("stationkeeper_http_request_duration_seconds_count", method="GET", route="healthz")

    client.get("/healthz")
    client.get("/no/such/page")
    client.generic("BREW", "/healthz")

    assert _in_process(**answered) == before + 1
    assert _in_process("stationkeeper_http_request_duration_seconds_count", method="GET", route="healthz") == timed + 1
    assert _in_process("stationkeeper_http_requests_total", method="GET", route="unmatched", status="404") >= 1
    assert _in_process("stationkeeper_http_requests_total", method="other", route="healthz", status="200") >= 1


# -- counted where things happen ------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_failover_and_a_takeover_are_counted_once_they_commit(django_capture_on_commit_callbacks):
    now = timezone.now()
    NodeFactory(name="spare", last_heartbeat_at=now)
    channel = ChannelFactory(node=NodeFactory(name="old"), status=Channel.Status.RUNNING,
                             last_heartbeat_at=now - timedelta(minutes=1))
    window = ScheduleFactory(start_at=now - timedelta(minutes=1), status=RecorderSchedule.Status.RUNNING,
                             claimed_by="gone", lease_expires_at=now - timedelta(seconds=1))
    failovers = _in_process("stationkeeper_channel_failovers_total", channel=channel.slug)
    takeovers = _in_process("stationkeeper_recording_takeovers_total", studio=window.recorder.studio.slug)

    with django_capture_on_commit_callbacks() as pending:
        channels_check_health(now=now)
        recorder_services.schedule_take_over(schedule=window, owner="here", node=NodeFactory(), now=now)
        assert _in_process("stationkeeper_channel_failovers_total", channel=channel.slug) == failovers
    for callback in pending:
        callback()

    assert _in_process("stationkeeper_channel_failovers_total", channel=channel.slug) == failovers + 1
    assert _in_process("stationkeeper_recording_takeovers_total", studio=window.recorder.studio.slug) == takeovers + 1


@pytest.mark.django_db
def test_a_periodic_pass_that_overruns_makes_the_next_one_late():
    count = _in_process("stationkeeper_periodic_lag_seconds_count", job="lag test")
    late = _in_process("stationkeeper_periodic_lag_seconds_sum", job="lag test")

    run_exclusively(name="lag test", lock_key=8219999, interval=0.05, run_for=0.35, step=lambda: time.sleep(0.1))

    passes = _in_process("stationkeeper_periodic_lag_seconds_count", job="lag test") - count
    assert passes >= 3
    # every pass but the first began about 50 ms after it was due
    assert _in_process("stationkeeper_periodic_lag_seconds_sum", job="lag test") - late >= 0.04 * (passes - 1)


def test_the_counts_of_a_process_that_ended_are_kept_and_its_live_gauges_dropped(tmp_path):
    ended = subprocess.Popen(["true"])
    ended.wait()
    requests_key = mmap_key("stationkeeper_http_requests", "stationkeeper_http_requests_total",
                            ["method", "route", "status"], ["GET", "healthz", "200"], "Requests.")
    clients_key = mmap_key("stationkeeper_websocket_clients", "stationkeeper_websocket_clients", [], [], "Clients.")
    for pid, answered, connected in ((ended.pid, 3, 2), (os.getpid(), 4, 1)):
        with closing(MmapedDict(str(tmp_path / f"counter_{pid}.db"))) as counts, \
                closing(MmapedDict(str(tmp_path / f"gauge_livesum_{pid}.db"))) as gauges:
            counts.write_value(requests_key, answered, 0)
            gauges.write_value(clients_key, connected, 0)
    (tmp_path / f"counter_{os.getppid()}.db").touch()  # a live process that just began: its file not yet sized
    (tmp_path / "counter_999999999.db").touch()  # one that died before it sized its file
    shared = SharedDirectory(tmp_path)

    for _scrape_again in range(2):
        samples = {(s.name, s.labels.get("route")): s.value for family in shared.collect() for s in family.samples}
        assert samples[("stationkeeper_http_requests_total", "healthz")] == 7  # never goes back
        assert samples[("stationkeeper_websocket_clients", None)] == 1
    assert sorted(path.name for path in tmp_path.glob("*.db")) == sorted([
        "counter_ended.db", f"counter_{os.getpid()}.db", f"gauge_livesum_{os.getpid()}.db", f"counter_{os.getppid()}.db"])


def test_a_worker_forked_during_a_scrape_does_not_hold_up_the_next_one(tmp_path):
    """django-q2 forks its workers from the process that answers the cluster's scrapes: one forked while a scrape
    folds the directory must not keep its lock (a fresh clone's run of the cluster test hung on it)."""
    shared = SharedDirectory(tmp_path)
    with shared.folding():
        worker = os.fork()
        if worker == 0:
            time.sleep(30)
            os._exit(0)
    scraper = ThreadPoolExecutor(1)
    try:
        scraper.submit(shared.collect).result(timeout=5)
    finally:
        os.kill(worker, signal.SIGKILL)
        os.waitpid(worker, 0)
        scraper.shutdown()


# -- each kind of process serves its own ----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_web_processes_sharing_a_socket_answer_one_scrape_for_all_of_them(tmp_path, operator_a, studio_a):
    port = closed_port()
    web = launcher.web_processes(host="127.0.0.1", port=port, count=2)
    for child in web:
        child.env.update(database_env(METRICS_TOKEN=TOKEN, METRICS_DIR=tmp_path / "metrics", LOG_LEVEL="WARNING"))
        child.start()
    base, key = f"http://127.0.0.1:{port}", Token.objects.create(user=operator_a).key
    try:
        wait_until(lambda: _answers(f"{base}/healthz"), timeout=30, message="Daphne up")
        shared = tmp_path / "metrics" / "web"
        wait_until(lambda: len(list(shared.glob("gauge_livesum_*.db"))) == 2, timeout=30,
                   message="both web processes counting in one directory")
        assert requests.get(f"{base}/metrics", timeout=5).status_code == 401
        assert requests.get(f"{base}/metrics", headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
        # not /healthz: a poll that timed out while Daphne started may still be answered
        readyz = {"method": "GET", "route": "readyz", "status": "200"}
        before = _value(_scrape(f"{base}/metrics"), "stationkeeper_http_requests_total", **readyz)

        for _request in range(10):  # each on a new connection: the kernel spreads them over both processes
            requests.get(f"{base}/readyz", timeout=5)
        assert _value(_scrape(f"{base}/metrics"), "stationkeeper_http_requests_total", **readyz) == before + 10

        with connect(f"ws://127.0.0.1:{port}/ws/studios/{studio_a.pk}/?token={key}", origin="http://127.0.0.1") as socket:
            assert json.loads(socket.recv(timeout=10))["type"] == "snapshot"
            assert _value(_scrape(f"{base}/metrics"), "stationkeeper_websocket_clients") == 1
        _scrape_until(f"{base}/metrics", lambda s: _value(s, "stationkeeper_websocket_clients") == 0,
                      message="the gauge back to none once the socket closed")
    finally:
        stop(*(child.process for child in web))
        os.close(web[0].pass_fds[0])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_cluster_serves_its_queues_depth_and_wait_its_loops_lag_and_its_failovers(tmp_path):
    port = closed_port()
    url = f"http://127.0.0.1:{port}/metrics"
    cluster = spawn_manage("qcluster", env=database_env(
        Q_CLUSTER_NAME="events", Q_EVENTS_WORKERS=1, TICK_RUN_SECONDS=3, METRICS_PORTS=f"events:{port}",
        METRICS_TOKEN=TOKEN, METRICS_DIR=tmp_path / "metrics", LOG_LEVEL="WARNING"))
    try:
        wait_until(lambda: _scraped(url), timeout=30, message="the cluster's endpoint")
        assert requests.get(url, timeout=5).status_code == 401
        assert ("stationkeeper_queue_depth", frozenset({("queue", "events")})) in _scrape(url)

        async_task("time.sleep", 3, cluster="events")  # the one worker is busy: what comes next waits
        for _probe in range(8):
            async_task("station.queues.waited", time.time(), cluster="events")
        _scrape_until(url, lambda s: _value(s, "stationkeeper_queue_depth", queue="events") >= 4, timeout=3,
                      message="the jobs behind the busy worker counted as waiting")
        samples = _scrape_until(url, lambda s: _value(s, "stationkeeper_queue_wait_seconds_count", queue="events") == 9,
                                message="every job picked up")
        assert _value(samples, "stationkeeper_queue_depth", queue="events") == 0
        assert _value(samples, "stationkeeper_queue_wait_seconds_sum", queue="events") > 8 * 2  # behind the 3 s job

        now = timezone.now()
        NodeFactory(name="spare", last_heartbeat_at=now)
        channel = ChannelFactory(node=NodeFactory(name="old"), status=Channel.Status.RUNNING,
                                 last_heartbeat_at=now - timedelta(minutes=1))
        async_task("playout.tasks.health", task_name="playout.health", cluster="events")
        samples = _scrape_until(url, lambda s: _value(s, "stationkeeper_channel_failovers_total", channel=channel.slug),
                                message="the failover counted")
        assert _value(samples, "stationkeeper_channel_failovers_total", channel=channel.slug) == 1
        assert _value(samples, "stationkeeper_periodic_lag_seconds_count", job="playout.health") >= 1
    finally:
        stop(cluster)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("loopback_allowed")
def test_a_node_serves_its_channels_dead_air_restarts_and_on_air_error(media_root):
    port = closed_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with _channel_on_air(media_root, METRICS_PORTS=f"node:{port}") as (channel, _, _):
        agent = next(child for child in psutil.Process().children() if "run_node" in child.cmdline())
        samples = _scrape(url, token=None)  # no METRICS_TOKEN: the port on loopback serves without one
        dead_air = _value(samples, "stationkeeper_dead_air_seconds_total", channel="air")
        assert ("process_resident_memory_bytes", frozenset()) in samples  # one process: its own figures too

        tone = _tone(channel.studio, media_root, 660, 2)
        bulletin = PlaylistFactory(studio=channel.studio, name="Bulletin")
        PlaylistItem.objects.create(playlist=bulletin, position=0, asset=tone)
        slot = timezone.now() + timedelta(seconds=3)
        ShowInstanceFactory(show__channel=channel, show__playlist=bulletin, start_at=slot, end_at=slot + timedelta(seconds=2))
        played = wait_until(lambda: AsRunEntry.objects.filter(channel=channel, result=AsRunEntry.Result.PLAYED).first(),
                            timeout=15, message="the item on air")
        item = ScheduledItem.objects.get(pk=played.scheduled_item_id)
        samples = _scrape(url, token=None)
        assert _value(samples, "stationkeeper_on_air_start_error_seconds_count", channel="air") == 1
        assert _value(samples, "stationkeeper_on_air_start_error_seconds_sum", channel="air") == pytest.approx(
            (played.started_at - item.start_at).total_seconds(), abs=1e-6)

        os.kill(_engine_pid(agent), signal.SIGKILL)
        _back_on_air(channel, channel.node, timezone.now())
        samples = _scrape_until(url, lambda s: _value(s, "stationkeeper_dead_air_seconds_total", channel="air") > dead_air,
                                token=None, message="the engine's absence counted as dead air")
        assert _value(samples, "stationkeeper_engine_restarts_total", engine="liquidsoap") == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("loopback_allowed")
def test_a_node_serves_its_recordings_start_error_and_ffmpeg_restarts(media_root, studio_a):
    port = closed_port()
    url = f"http://127.0.0.1:{port}/metrics"
    agent = spawn_manage("run_node", "--name", "host-1", env=database_env(
        METRICS_PORTS=f"node:{port}", METRICS_TOKEN=TOKEN, RECORDER_STARTUP_TIMEOUT_SECONDS=30))
    try:
        wait_until(lambda: _scraped(url), timeout=30, message="the agent's endpoint")
        assert requests.get(url, timeout=5).status_code == 401  # a token is set: the port asks for it too
        start = timezone.now() + timedelta(seconds=2)
        tone = ScheduleFactory(recorder=RecorderFactory(studio=studio_a, source_url="tone:440"), start_at=start,
                               end_at=start + timedelta(seconds=2))
        ScheduleFactory(recorder=RecorderFactory(studio=studio_a, source_url=f"http://127.0.0.1:{closed_port()}/gone"),
                        start_at=start, end_at=start + timedelta(seconds=5))

        samples = _scrape_until(
            url, lambda s: _value(s, "stationkeeper_recording_start_error_seconds_count", studio="a")
            and _value(s, "stationkeeper_engine_restarts_total", engine="ffmpeg"),
            timeout=20, message="the tone's start and the unreachable source's retries counted")
        session = RecorderSchedule.objects.select_related("session").get(pk=tone.pk).session
        assert _value(samples, "stationkeeper_recording_start_error_seconds_count", studio="a") == 1
        assert _value(samples, "stationkeeper_recording_start_error_seconds_sum", studio="a") == pytest.approx(
            (session.started_at - tone.record_from).total_seconds(), abs=1e-6)
    finally:
        stop(agent)
