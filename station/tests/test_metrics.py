"""Prometheus metrics: declared once, counted where things happen, served by each kind of process and guarded."""

import json
import os
import subprocess
import time
from contextlib import closing

import pytest
import requests
from django_q.tasks import async_task
from prometheus_client import REGISTRY
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from recorders.tests.stream_server import closed_port
from station import launcher
from station.metrics import SharedDirectory
from station.periodic import run_exclusively
from station.tests.processes import database_env, spawn_manage, stop, wait_until

TOKEN = "scrape-me"


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
    shared = SharedDirectory(tmp_path)

    for _scrape_again in range(2):
        samples = {(s.name, s.labels.get("route")): s.value for family in shared.collect() for s in family.samples}
        assert samples[("stationkeeper_http_requests_total", "healthz")] == 7  # never goes back
        assert samples[("stationkeeper_websocket_clients", None)] == 1
    assert sorted(path.name for path in tmp_path.glob("*.db")) == sorted([
        "counter_ended.db", f"counter_{os.getpid()}.db", f"gauge_livesum_{os.getpid()}.db"])


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
        assert requests.get(f"{base}/metrics", timeout=5).status_code == 401
        assert requests.get(f"{base}/metrics", headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
        healthz = {"method": "GET", "route": "healthz", "status": "200"}
        before = _value(_scrape(f"{base}/metrics"), "stationkeeper_http_requests_total", **healthz)

        for _request in range(10):  # each on a new connection: the kernel spreads them over both processes
            requests.get(f"{base}/healthz", timeout=5)
        assert _value(_scrape(f"{base}/metrics"), "stationkeeper_http_requests_total", **healthz) == before + 10

        with connect(f"ws://127.0.0.1:{port}/ws/studios/{studio_a.pk}/?token={key}", origin="http://127.0.0.1") as socket:
            assert json.loads(socket.recv(timeout=10))["type"] == "snapshot"
            assert _value(_scrape(f"{base}/metrics"), "stationkeeper_websocket_clients") == 1
        _scrape_until(f"{base}/metrics", lambda s: _value(s, "stationkeeper_websocket_clients") == 0,
                      message="the gauge back to none once the socket closed")
        assert len(list((tmp_path / "metrics" / "web").glob("gauge_livesum_*.db"))) == 2  # both count in one place
    finally:
        stop(*(child.process for child in web))
        os.close(web[0].pass_fds[0])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_cluster_serves_its_queues_depth_and_wait_and_its_loops_lag(tmp_path):
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

        async_task("playout.tasks.health", task_name="playout.health", cluster="events")
        _scrape_until(url, lambda s: _value(s, "stationkeeper_periodic_lag_seconds_count", job="playout.health") >= 2,
                      message="the health loop's passes")
    finally:
        stop(cluster)
