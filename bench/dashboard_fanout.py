"""Dashboard connects and fan-out: how fast a desk of dashboards gets its snapshots, and how late events reach them.

- web: Daphne serving station.asgi with pooled database connections, on a dedicated database of the
  embedded PostgreSQL; first one process, then the web tier as run_station and the systemd units run it:
  TIER_PROCESSES Daphne processes accepting on one listening socket (``station.launcher.web_processes``:
  the socket opened here, each process given it with ``daphne --fd``). Timing starts once every process
  has loaded the application and listens.
- clients: dashboards on the studio's socket, authenticated with a token (``?token=``), spread over
  client processes (CLIENTS_PER_PROCESS sockets each, CONNECTING_PER_PROCESS handshakes in flight each,
  their open-file limit raised), each a lean websocket client (``Dashboard``). They load, wait for one
  signal, then all connect at once, as a desk does when its web processes come back.
- connect time: from that signal to the moment the last dashboard has its snapshot, at the clients
  (1,000 on one process, 1,000 and 10,000 on the tier). It includes the clients' own handshakes.
- changes: after one unmeasured warm-up, this process raises EVENTS alerts (station.services.alert_raise: the
  alert row and its event in one transaction), one every INTERVAL s (on the tier every TIER_INTERVAL s, so
  one event's fan-out is done before the next). The commit instant is noted by an on_commit hook registered
  before the change, so it runs first after COMMIT, before the event's own delivery.
- latency: receipt − commit, for every client and every event; a receipt that never comes is counted.
- web CPU: the web processes' CPU time over the changes, per event and per dashboard and event
  (heartbeats and pings included): what sizes the cores a tier needs; and the client processes' CPU time per event.
- layers: channels-postgres, the default (a Daphne process takes one copy of each event from PostgreSQL's
  NOTIFY and hands it to its sockets) and Redis (channels-redis pub/sub; a redis-server started here on a
  spare port, without persistence) for one process; the tier on channels-postgres.
- memory: peak RSS and PSS of the Daphne process, of the tier's largest process and of its processes
  together, and of the largest client process and of all of them together.

What the figures include, on the 2-core machine they were measured on: web processes, clients, PostgreSQL
and Redis share the two cores, so a latency is the web tier's fan-out plus the time the client processes
need to read their frames (a client process reads its sockets' frames one after another), and a connect
time includes the clients' handshakes. The client processes run as batch work (SCHED_BATCH), as they stand
for browsers on other machines: a frame arriving doesn't preempt a web process in the middle of its fan-out
to wake a client for that one frame, and a client reads the frames that arrived meanwhile in one go
(at 10,000 dashboards, about 130 ms of the clients' CPU per event instead of 200). With 10,000
dashboards over 4 processes the two cores are the limit: each event costs the web processes
web_cpu_ms_per_event and the clients clients_cpu_ms_per_event of CPU, which two cores can't spread in
less than half that time. The latencies are upper bounds of what the web tier alone takes.

Run: .venv/bin/python bench/dashboard_fanout.py   (starts the embedded PostgreSQL, Redis and Daphne itself)
"""

import asyncio
import contextlib
import json
import multiprocessing
import os
import queue
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench_support import ROOT, RssSampler, fresh_database_url, listening, percentile, start_web, stop_web, wait_until

sys.path.insert(0, str(ROOT))
PORT, REDIS_PORT = 8766, 6391
CLIENT_COUNTS = tuple(int(n) for n in os.environ.get("FANOUT_CLIENTS", "100,1000").split(","))
TIER_CONNECT_CLIENTS, TIER_CLIENTS, TIER_PROCESSES = 1000, int(os.environ.get("FANOUT_TIER_CLIENTS", "10000")), 4
CLIENTS_PER_PROCESS, CONNECTING_PER_PROCESS, CONNECT_TIMEOUT_S = 1000, 25, 120
EVENTS, INTERVAL, TIER_INTERVAL = 30, 0.3, 1.0
GOAL_CONNECT_S, GOAL_P99_MS = 5.0, 200


class Dashboard(asyncio.Protocol):
    """A websocket client that reads only what the bench needs: when its snapshot came, and when each event did.

    The websockets library costs tens of microseconds per frame; ten thousand sockets on two cores would
    then measure the clients more than the web tier. This one opens the socket (RFC 6455's handshake),
    answers pings, and finds an event's seq at a fixed place of the frame the server writes.
    """

    EVENT_PREFIX = b'{"type": "event", "seq": '

    def __init__(self, request: bytes, receipts: dict[int, list[float]]):
        self.request, self.receipts = request, receipts
        self.snapshot_at = asyncio.get_running_loop().create_future()
        self.buffer, self.upgraded, self.transport = b"", False, None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        self.buffer += data
        if not self.upgraded:
            head, found, rest = self.buffer.partition(b"\r\n\r\n")
            if not found:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self._fail(head.split(b"\r\n")[0].decode())
                return
            self.buffer, self.upgraded = rest, True
        while len(self.buffer) >= 2:
            length, start = self.buffer[1] & 0x7F, 2
            if length == 126:
                length, start = int.from_bytes(self.buffer[2:4]), 4
            elif length == 127:
                length, start = int.from_bytes(self.buffer[2:10]), 10
            if len(self.buffer) < start + length:
                return
            opcode, payload, self.buffer = self.buffer[0] & 0x0F, self.buffer[start:start + length], self.buffer[start + length:]
            if opcode == 0x9:  # ping: a pong, masked (with a zero key) as a client's frames must be
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + bytes(4) + payload)
            elif opcode == 0x8:
                self._fail(f"closed by the server: {int.from_bytes(payload[:2])}")
            elif payload.startswith(self.EVENT_PREFIX):
                seq = int(payload[len(self.EVENT_PREFIX):payload.index(b",", len(self.EVENT_PREFIX))])
                self.receipts.setdefault(seq, []).append(arrived)
            elif not self.snapshot_at.done():
                assert payload.startswith(b'{"type": "snapshot"'), payload[:100]
                self.snapshot_at.set_result(arrived)

    def connection_lost(self, exc):
        self._fail(f"connection lost: {exc}")

    def _fail(self, reason: str) -> None:
        if not self.snapshot_at.done():
            self.snapshot_at.set_exception(ConnectionError(reason))


def _clients(path: str, count: int, loaded, go, ready, stop, results) -> None:
    """One client process: ``count`` dashboards connected on ``go``; reports when the last had its snapshot
    and how many failed, then {seq: [receipt times]} once told to stop."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nOrigin: http://127.0.0.1:{PORT}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: ZGFzaGJvYXJkLWJlbmNoIQ==\r\n\r\n").encode()

    async def run():
        loop, receipts = asyncio.get_running_loop(), {}
        gate = asyncio.Semaphore(CONNECTING_PER_PROCESS)

        async def connect():
            async with gate:
                try:
                    transport, dashboard = await loop.create_connection(lambda: Dashboard(request, receipts), "127.0.0.1", PORT)
                    return transport, await asyncio.wait_for(dashboard.snapshot_at, 120)
                except (OSError, TimeoutError):
                    return None, None

        loaded.put(os.getpid())
        await asyncio.to_thread(go.wait)
        connected = await asyncio.gather(*(connect() for _ in range(count)))
        ready.put((max((at for _, at in connected if at is not None), default=time.time()),
                   sum(at is None for _, at in connected)))
        await asyncio.to_thread(stop.wait)
        for transport, _ in connected:
            if transport is not None:
                transport.close()
        results.put(receipts)

    asyncio.run(run())


def fan_out(path: str, clients: int, studio_id: int, servers: list[subprocess.Popen], sampler: RssSampler, label: str, *,
            events: int = EVENTS, interval: float = INTERVAL) -> dict:
    """Connect ``clients`` dashboards at once and time it; commit ``events`` changes and return the commit→receipt
    latencies, and the web processes' CPU time per event."""
    import psutil
    from django.db import transaction

    from station import events as event_log, services

    loaded, ready, results = multiprocessing.Queue(), multiprocessing.Queue(), multiprocessing.Queue()
    go, stop = multiprocessing.Event(), multiprocessing.Event()
    processes_needed = max(4, -(-clients // CLIENTS_PER_PROCESS))
    shares = [clients // processes_needed + (n < clients % processes_needed) for n in range(processes_needed)]
    processes = [multiprocessing.Process(target=_clients, args=(path, share, loaded, go, ready, stop, results))
                 for share in shares]
    for process in processes:
        process.start()
        sampler.groups.setdefault("clients", set()).add(process.pid)
    for _ in processes:
        loaded.get(timeout=60)
    connect_started = time.time()
    go.set()
    connected = []
    with contextlib.suppress(queue.Empty):
        while len(connected) < len(processes):
            connected.append(ready.get(timeout=max(0.0, connect_started + CONNECT_TIMEOUT_S - time.time())))
    if len(connected) < len(processes):
        for process in processes:
            process.terminate()
            process.join()
            sampler.groups["clients"].discard(process.pid)
        return {"clients": clients, "connect_all_s": None, "not_connected_within_s": CONNECT_TIMEOUT_S}
    connect_seconds = max(at for at, _ in connected) - connect_started
    failed = sum(count for _, count in connected)
    figures = {"clients": clients, "client_processes": len(processes), "connect_all_s": round(connect_seconds, 2),
               "failed_connects": failed}
    committed_at = {}
    if events:
        services.alert_raise(studio=studio_id, code="bench", message="Warm-up", subject=f"{label}-warm-up")  # first-use costs
        time.sleep(1)
        web = [psutil.Process(server.pid) for server in servers]
        readers = [psutil.Process(process.pid) for process in processes]
        cpu_before = sum(sum(process.cpu_times()[:2]) for process in web)
        clients_cpu_before = sum(sum(process.cpu_times()[:2]) for process in readers)
        for n in range(events):
            marks = []
            with transaction.atomic():
                transaction.on_commit(lambda: marks.append(time.time()))
                services.alert_raise(studio=studio_id, code="bench", message=f"Bench alert {n}", subject=f"{label}-{n}")
            committed_at[event_log.latest_seq()] = marks[0]
            time.sleep(interval)
        time.sleep(2)  # the last receipts
        web_cpu_seconds = sum(sum(process.cpu_times()[:2]) for process in web) - cpu_before  # heartbeats and pings too
        clients_cpu_seconds = sum(sum(process.cpu_times()[:2]) for process in readers) - clients_cpu_before
    stop.set()
    receipts = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join()
        sampler.groups["clients"].discard(process.pid)
    if not events:
        return figures
    latencies, missing = [], 0
    for seq, commit in committed_at.items():
        arrivals = [arrived for batch in receipts for arrived in batch.get(seq, [])]
        missing += clients - failed - len(arrivals)
        latencies += [arrived - commit for arrived in arrivals]
        if os.environ.get("FANOUT_DEBUG"):
            print(seq, round((min(arrivals) - commit) * 1000), round((max(arrivals) - commit) * 1000), file=sys.stderr)
    return {
        **figures,
        "events": events,
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "missing": missing,
        "web_cpu_ms_per_event": round(web_cpu_seconds / events * 1000, 1),
        "web_cpu_us_per_dashboard_event": round(web_cpu_seconds / events / (clients - failed) * 1e6, 1),
        "clients_cpu_ms_per_event": round(clients_cpu_seconds / events * 1000, 1),
    }


def start_redis(directory: str) -> subprocess.Popen | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    server = subprocess.Popen([binary, "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: listening(REDIS_PORT), 10, "redis-server")
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
    path = f"/ws/studios/{studio.pk}/?token={token}"

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
    started = time.monotonic()
    try:
        for layer, (server_env, publisher_settings) in layers.items():
            if layer not in os.environ.get("FANOUT_LAYERS", layer):
                continue
            servers = start_web(PORT, 1, server_env, sampler, f"daphne ({layer})")
            try:
                with override_settings(**publisher_settings):
                    for clients in CLIENT_COUNTS:
                        figures[f"{layer}_{clients}"] = fan_out(path, clients, studio.pk, servers, sampler, f"{layer}-{clients}")
            finally:
                stop_web(PORT, servers)
        servers = start_web(PORT, TIER_PROCESSES, {}, sampler, f"daphne x{TIER_PROCESSES} (postgres)")
        try:
            figures[f"tier_{TIER_CONNECT_CLIENTS}"] = fan_out(path, TIER_CONNECT_CLIENTS, studio.pk, servers, sampler, "tier-connect",
                                                              events=0)
            figures[f"tier_{TIER_CLIENTS}"] = fan_out(path, TIER_CLIENTS, studio.pk, servers, sampler, f"tier-{TIER_CLIENTS}",
                                                      interval=TIER_INTERVAL)
        finally:
            stop_web(PORT, servers)
    finally:
        sampler.running = False
        if redis is not None:
            redis.terminate()
            redis.wait()
        shutil.rmtree(redis_dir, ignore_errors=True)
    figures["bench_s"] = round(time.monotonic() - started)
    figures.update(sampler.figures())
    rounds = [value for value in figures.values() if isinstance(value, dict) and "clients" in value]
    single_1000 = [figures[f"{layer}_1000"] for layer in layers if f"{layer}_1000" in figures]
    goal = {"connect_1000_s": GOAL_CONNECT_S, "connect_1000_over_4_s": GOAL_CONNECT_S,
            "p99_ms_at_1000_clients": GOAL_P99_MS, "p99_ms_10000_over_4": GOAL_P99_MS, "missing": 0, "failed_connects": 0}
    met = (redis is not None and len(single_1000) == 2 and TIER_CLIENTS == 10_000
           and all(value["connect_all_s"] is not None and value.get("failed_connects") == 0 for value in rounds)
           and all(value["missing"] == 0 for value in rounds if "missing" in value)
           and all(value["connect_all_s"] <= GOAL_CONNECT_S for value in [*single_1000, figures[f"tier_{TIER_CONNECT_CLIENTS}"]])
           and all(value["p99_ms"] <= GOAL_P99_MS for value in [*single_1000, figures[f"tier_{TIER_CLIENTS}"]]))
    print(json.dumps({"bench": "dashboard_fanout", "figures": figures, "goal": goal, "met": met}))


if __name__ == "__main__":
    main()
