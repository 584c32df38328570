"""Dashboard fan-out: N websocket clients on one Daphne process; latency from a change's commit to receipt.

- server: one Daphne process serving station.asgi as run_station's web processes do (pooled database
  connections) on a dedicated database of the embedded PostgreSQL.
- clients: N dashboards (100, then 1,000) on the studio's socket, authenticated with a token
  (``?token=``), spread over CLIENT_PROCESSES processes; each notes the wall-clock time every event
  arrives. All of them are connected and past their snapshot before the first change.
- changes: after one unmeasured warm-up, this process raises EVENTS alerts (station.services.alert_raise: the alert row and its
  event in one transaction), one every INTERVAL s. The commit instant is noted by an on_commit hook
  registered before the change, so it runs first after COMMIT, before the event's own delivery.
- latency: receipt − commit, for every client and every event; a receipt that never comes is counted.
- layers: channels-postgres, the default (the Daphne process takes one copy of each event from
  PostgreSQL's NOTIFY and hands it to its sockets) and Redis (channels-redis pub/sub; a redis-server
  started here on a spare port, without persistence).
- peak RSS of the Daphne process and of the largest client process.

Run: .venv/bin/python bench/dashboard_fanout.py   (starts the embedded PostgreSQL, Redis and Daphne itself)
"""

import asyncio
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from bench_support import ROOT, RssSampler, fresh_database_url, percentile, wait_until

sys.path.insert(0, str(ROOT))
PORT, REDIS_PORT = 8766, 6391
CLIENT_COUNTS = tuple(int(n) for n in os.environ.get("FANOUT_CLIENTS", "100,1000").split(","))
CLIENT_PROCESSES = 4
EVENTS, INTERVAL = 30, 0.3
GOAL_P99_MS = 200


def _clients(url: str, count: int, ready, stop, results) -> None:
    """One client process: ``count`` sockets; reports {seq: [receipt times]} once told to stop."""
    import websockets

    async def run():
        receipts: dict[int, list[float]] = {}
        gate = asyncio.Semaphore(25)

        async def connect():
            async with gate:
                socket_ = await websockets.connect(url, origin=f"http://127.0.0.1:{PORT}", open_timeout=120, max_size=None,
                                                   ping_interval=None)
                first = json.loads(await socket_.recv())
                assert first["type"] == "snapshot", first
                return socket_

        async def listen(socket_):
            async for raw in socket_:
                arrived = time.time()
                message = json.loads(raw)
                if message["type"] == "event":
                    receipts.setdefault(message["seq"], []).append(arrived)

        sockets = await asyncio.gather(*(connect() for _ in range(count)))
        listeners = [asyncio.create_task(listen(socket_)) for socket_ in sockets]
        ready.put(count)
        while not stop.is_set():
            await asyncio.sleep(0.05)
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*(socket_.close() for socket_ in sockets), return_exceptions=True)
        results.put(receipts)

    asyncio.run(run())


def fan_out(url: str, clients: int, studio_id: int, sampler: RssSampler, label: str) -> dict:
    """Connect ``clients`` dashboards, commit EVENTS changes, and return the commit→receipt latencies."""
    from django.db import transaction

    from station import events, services

    ready, stop, results = multiprocessing.Queue(), multiprocessing.Event(), multiprocessing.Queue()
    shares = [clients // CLIENT_PROCESSES + (n < clients % CLIENT_PROCESSES) for n in range(CLIENT_PROCESSES)]
    processes = [multiprocessing.Process(target=_clients, args=(url, share, ready, stop, results)) for share in shares]
    for process in processes:
        process.start()
        sampler.pids.add(process.pid)
    connect_started = time.monotonic()
    for _ in processes:
        ready.get(timeout=240)
    connect_seconds = time.monotonic() - connect_started
    services.alert_raise(studio=studio_id, code="bench", message="Warm-up", subject=f"{label}-warm-up")  # first-use costs
    time.sleep(1)
    committed_at = {}
    for n in range(EVENTS):
        marks = []
        with transaction.atomic():
            transaction.on_commit(lambda: marks.append(time.time()))
            services.alert_raise(studio=studio_id, code="bench", message=f"Bench alert {n}", subject=f"{label}-{n}")
        committed_at[events.latest_seq()] = marks[0]
        time.sleep(INTERVAL)
    time.sleep(2)  # the last receipts
    stop.set()
    receipts = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join()
        sampler.pids.discard(process.pid)
    latencies, missing = [], 0
    for seq, commit in committed_at.items():
        arrivals = [arrived for batch in receipts for arrived in batch.get(seq, [])]
        missing += clients - len(arrivals)
        latencies += [arrived - commit for arrived in arrivals]
        if os.environ.get("FANOUT_DEBUG"):
            print(seq, round((min(arrivals) - commit) * 1000), round((max(arrivals) - commit) * 1000), file=sys.stderr)
    return {
        "clients": clients,
        "events": EVENTS,
        "connect_all_s": round(connect_seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "missing": missing,
    }


def start_redis(directory: str) -> subprocess.Popen | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    server = subprocess.Popen([binary, "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: _listening(REDIS_PORT), 10, "redis-server")
    return server


def main() -> None:
    os.environ.update(DATABASE_URL=fresh_database_url("bench_fanout"), DJANGO_SETTINGS_MODULE="station.settings",
                      LOG_LEVEL="WARNING")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import override_settings
    from rest_framework.authtoken.models import Token

    from station.settings import channel_layers_for
    from station.tests import factories

    call_command("migrate", verbosity=0)
    studio = factories.StudioFactory(name="Bench", slug="bench")
    token = Token.objects.create(user=factories.member_of(studio, username="desk")).key
    url = f"ws://127.0.0.1:{PORT}/ws/studios/{studio.pk}/?token={token}"

    figures, redis_dir = {}, tempfile.mkdtemp(prefix="bench-redis-")
    redis = start_redis(redis_dir)
    redis_url = f"redis://127.0.0.1:{REDIS_PORT}/0"
    layers = {"postgres": ({}, {})}
    if redis is not None:
        layers["redis"] = ({"REDIS_URL": redis_url}, {"CHANNEL_LAYERS": channel_layers_for(redis_url)})
    else:
        figures["redis"] = "redis-server not found; install it (Debian: redis-server) to measure the Redis layer"
    sampler = RssSampler()
    sampler.start()
    try:
        for layer, (server_env, publisher_settings) in layers.items():
            if layer not in os.environ.get("FANOUT_LAYERS", layer):
                continue
            server = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(PORT), "station.asgi:application"],
                cwd=ROOT, env={**os.environ, "DATABASE_POOL_SIZE": "8", **server_env},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            sampler.alone[server.pid] = f"daphne ({layer})"
            try:
                wait_until(lambda: _listening(PORT), 30, "Daphne")
                with override_settings(**publisher_settings):
                    for clients in CLIENT_COUNTS:
                        figures[f"{layer}_{clients}"] = fan_out(url, clients, studio.pk, sampler, f"{layer}-{clients}")
            finally:
                server.terminate()
                server.wait()
    finally:
        sampler.running = False
        if redis is not None:
            redis.terminate()
            redis.wait()
        shutil.rmtree(redis_dir, ignore_errors=True)
    figures.update(sampler.figures())
    rounds = [value for value in figures.values() if isinstance(value, dict) and "p99_ms" in value]
    at_most = [value for value in rounds if value["clients"] == 1000]
    met = (redis is not None and len(at_most) == 2 and all(value["p99_ms"] <= GOAL_P99_MS for value in at_most)
           and all(value["missing"] == 0 for value in rounds))
    print(json.dumps({"bench": "dashboard_fanout", "figures": figures,
                      "goal": {"p99_ms_at_1000_clients": GOAL_P99_MS, "missing": 0}, "met": met}))


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    main()
