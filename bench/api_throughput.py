"""REST API throughput and latency on loopback, beside plain Django views over the same rows.

- server: the web tier as `./scripts/run` serves the station (station.launcher.web_processes:
  WEB_PROCESSES Daphne processes on one socket, persistent database connections) on a dedicated
  database of the embedded PostgreSQL with 1,000 schedule windows.
- load: CLIENTS processes, each on one keep-alive connection, send requests back to back for
  SECONDS after a warm-up; latency is measured by the client, request written to response read.
- ours: `GET /api/v1/schedules/?page_size=100` (token auth, studio scoping, django-filter, pagination,
  the serializer) and `POST /api/v1/schedules/` (a new window each time: validation, model clean,
  constraint checks, insert).
- baseline: plain Django views (bench/api_baseline_urls.py) returning the same 100 rows with
  `JsonResponse` over `.values()`, and creating the same row with `objects.create`, no auth, no checks.
- also one client alone on the API list: its latency is the service time, without queueing (Daphne runs
  Django's synchronous views on one thread per process, so concurrent requests wait their turn).
- peak RSS of each Daphne process.

Run: .venv/bin/python bench/api_throughput.py   (starts the embedded PostgreSQL and Daphne itself)
"""

import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from bench_support import ROOT, RssSampler, fresh_database_url, listening, percentile, wait_until

sys.path.insert(0, str(ROOT))
PORT, CLIENTS, SECONDS, WARM_UP_SECONDS, ROWS = 8765, 4, 12, 2, 1000
FIRST_WINDOW = datetime(2030, 1, 1, tzinfo=UTC)


def _load(path: str, method: str, headers: dict, seconds: float, worker: int, results) -> None:
    """One client: requests back to back on one connection; POSTs each get a window of their own."""
    connection = http.client.HTTPConnection("127.0.0.1", PORT)
    latencies, statuses, sent = [], {}, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = None
        if method == "POST":
            start = FIRST_WINDOW + timedelta(days=365 * (worker + 1), minutes=10 * sent)
            body = json.dumps({"recorder": headers["X-Bench-Recorder"], "name": f"Bench {worker}-{sent}",
                               "start_at": start.isoformat(), "end_at": (start + timedelta(minutes=5)).isoformat()})
        began = time.perf_counter()
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - began)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        sent += 1
    results.put((latencies, statuses))


def measure(path: str, method: str = "GET", headers: dict | None = None, clients_from: int = 0, clients: int = 0) -> dict:
    """Requests/s and latency percentiles of ``clients`` (CLIENTS) concurrent clients, after a warm-up."""
    clients = clients or CLIENTS
    headers = {"Content-Type": "application/json", **(headers or {})}
    results = multiprocessing.Queue()
    for seconds, worker_base in ((WARM_UP_SECONDS, clients_from + clients), (SECONDS, clients_from)):
        workers = [multiprocessing.Process(target=_load, args=(path, method, headers, seconds, worker_base + n, results))
                   for n in range(clients)]
        for worker in workers:
            worker.start()
        collected = [results.get() for _ in workers]
        for worker in workers:
            worker.join()
    latencies = [latency for batch, _ in collected for latency in batch]
    statuses = {}
    for _, batch in collected:
        for status, count in batch.items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "requests_per_second": round(len(latencies) / SECONDS, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "statuses": statuses,
    }


def main() -> None:
    os.environ.update(DATABASE_URL=fresh_database_url("bench_api"), DJANGO_SETTINGS_MODULE="station.settings",
                      API_THROTTLE_USER="100000000/minute", LOG_LEVEL="WARNING")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from recorders.models import Recorder, RecorderSchedule
    from station import launcher
    from station.tests import factories

    call_command("migrate", verbosity=0)
    studio = factories.StudioFactory(name="Bench", slug="bench")
    operator = factories.member_of(studio, username="bench")
    recorder = Recorder.objects.create(studio=studio, name="Bench", source_url="tone:1000")
    RecorderSchedule.objects.bulk_create(
        RecorderSchedule(recorder=recorder, name=f"Window {n}", start_at=FIRST_WINDOW + timedelta(hours=n),
                         end_at=FIRST_WINDOW + timedelta(hours=n, minutes=30)) for n in range(ROWS))
    with connection.cursor() as cursor:  # as autovacuum leaves a table a while after a bulk load
        cursor.execute("VACUUM ANALYZE recorders_recorderschedule")
    token = Token.objects.create(user=operator).key
    auth = {"Authorization": f"Token {token}", "X-Bench-Recorder": str(recorder.pk)}

    server_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "api_baseline_settings",
                  "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)])}
    web = launcher.web_processes(host="127.0.0.1", port=PORT, count=settings.WEB_PROCESSES)
    servers = [subprocess.Popen(child.argv, cwd=ROOT, env={**server_env, **child.env}, pass_fds=child.pass_fds,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for child in web]
    sampler = RssSampler()
    for child, server in zip(web, servers, strict=True):
        sampler.alone[server.pid] = f"daphne ({child.name})"
    sampler.start()
    try:
        wait_until(lambda: listening(PORT), 30, "Daphne")
        figures = {
            # one client alone: the service time, without waiting behind other requests
            "api_get_one_client": measure("/api/v1/schedules/?page_size=100", headers=auth, clients=1),
            "api_get": measure("/api/v1/schedules/?page_size=100", headers=auth),
            "plain_get": measure("/plain/schedules/"),
            "api_post": measure("/api/v1/schedules/", "POST", headers=auth),
            "plain_post": measure("/plain/schedules/create/", "POST", headers=auth, clients_from=2 * CLIENTS),
        }
    finally:
        for server in servers:
            server.terminate()
            server.wait()
        sampler.running = False
    figures["get_ratio"] = round(figures["api_get"]["requests_per_second"] / figures["plain_get"]["requests_per_second"], 2)
    figures["post_ratio"] = round(figures["api_post"]["requests_per_second"] / figures["plain_post"]["requests_per_second"], 2)
    figures["clients"] = CLIENTS
    figures["web_processes"] = len(servers)
    figures.update(sampler.figures())
    goal = {"p95_ms": 50, "get_ratio": 0.5, "post_ratio": 0.5}
    only_successes = all(set(figures[k]["statuses"]) <= {200, 201} for k in ("api_get", "plain_get", "api_post", "plain_post"))
    met = (only_successes and figures["api_get"]["p95_ms"] <= 50 and figures["api_post"]["p95_ms"] <= 50
           and figures["get_ratio"] >= 0.5 and figures["post_ratio"] >= 0.5)
    print(json.dumps({"bench": "api_throughput", "figures": figures, "goal": goal, "met": met}))


if __name__ == "__main__":
    main()
