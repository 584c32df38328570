"""Chaos soak: the whole station on three hosts with faults on a schedule, then an audit of what it did.

- PostgreSQL: the embedded server (var/pg), a database of its own; Redis: a redis-server started here
  (REDIS_URL: the django-q2 broker and the channel layer), on the hosts' network.
- Hosts: three network namespaces (station/tests/hosts.py), each with its node agent, its own media cache
  (PLAYOUT_SHARED_MEDIA=false: media comes from the web tier) and its engines; each reaches PostgreSQL
  over a link of its own, which a fault can cut. Recordings are written to the one MEDIA_ROOT.
- Root namespace: two Daphne web processes on one listening socket (as run_station and deploy/ run
  them), the three django-q2 clusters (playout, ingest, events), the clock source the recorders record,
  and the bench's own clients. Each process that exits is started again after 1 s (systemd's
  Restart=always, RestartSec=1).
- Load: three harbor channels (one per host to start with) playing a 4 s filler; two recorders with
  back-to-back 20 s windows; DASHBOARDS websocket clients; one API client (GET every 0.2 s); one webhook.
- Faults, one cycle (FAULTS, offsets in seconds; --minutes repeats the cycle): SIGKILL an agent, an
  engine, a cluster worker, a web process; SIGSTOP an agent past its lease, then SIGCONT (a zombie
  that believes it still owns its work); cut a host off from PostgreSQL for 20 s; restart PostgreSQL.
  Two pairs overlap (a worker killed while an agent is frozen; PostgreSQL restarted while a host is cut
  off from it); what happens while several faults hold is put down to them together.
- Audit, where a user meets it:
  - windows: each ended window completed once, its asset the window's length (gaps noted), one session;
  - as-run: at most one open row per channel and no overlapping rows; rows a node wrote for a channel
    while another node held it (``fenced_writes``, from the channel's placement polled every 0.25 s);
  - dead air: a listener per channel decodes the channel's stream (from the host the database says
    it is on, following it when it moves) and counts the seconds without audible audio, per fault:
    silent audio by the stream's own time, the stream gone by the wall clock until audio is heard again;
  - events: every event of the studio reaches every dashboard (reconnecting with ``since=``);
  - webhooks: every subscribed event received at least once (delivery id: the idempotency key);
  - API: 5xx and failed requests per fault, apart from those in flight when the web process or PostgreSQL
    serving them was killed (that process's own connections).
- Memory: peak RSS and PSS of each process kind.

Run: .venv/bin/python bench/chaos_soak.py [--minutes N]   (as root: it builds network namespaces)
Default: one fault cycle, under 5 minutes in all.
"""

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from bench_support import ROOT, RssSampler, fresh_database_url, listening, wait_until

sys.path.insert(0, str(ROOT))
WEB_PORT, REDIS_PORT, HARBOR_PORT = 8780, 6393, 8110
LEASE_SECONDS = 10  # the production default: the SIGSTOP lasts longer
CYCLE_SECONDS = 140
# (offset, name, kind) — kind: engine/host faults may cost ≤ 5 s of air; the others none. Two pairs overlap: a
# playout worker (where the health job may run) dies while host-3 is frozen and its channel must move, and
# PostgreSQL restarts while host-2 is cut off from it.
FAULTS = (
    (10, "kill agent host-1", "host"),
    (35, "kill engine on host-2", "engine"),
    (55, "kill a web process", "web"),
    (65, "SIGSTOP agent host-3 for 15 s", "host"),
    (70, "kill a playout cluster worker", "worker"),
    (95, "cut host-2 from PostgreSQL for 20 s", "host"),  # its work moves: the host is lost to the station
    (105, "restart PostgreSQL", "database"),
)
FAULT_WINDOW_SECONDS = 25  # what happens within this long after a fault is its doing
SETTLE_SECONDS = 30
WEBHOOK_GRACE_SECONDS = 30  # a delivery retried after a failure waits its backoff
WINDOW_SECONDS, RECORDERS, DASHBOARDS = 20, 2, 12
DEAD_AIR_GOAL = {"host": 5.0, "engine": 5.0, "web": 0.0, "worker": 0.0, "database": 0.0}
AUDIBLE_RMS = 300  # of 32768: the filler's tone is far above; Liquidsoap's silence is 0


@dataclass
class Supervised:
    """A process this bench keeps running, as systemd would; ``held`` ones are not restarted (stopped on purpose)."""

    name: str
    argv: list[str]
    env: dict
    pass_fds: tuple = ()
    process: subprocess.Popen | None = None
    held: bool = False
    exited_at: float | None = None
    log: Path | None = None

    def start(self) -> None:
        output = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(self.argv, env={**os.environ, **self.env}, cwd=ROOT, pass_fds=self.pass_fds,
                                        stdout=output, stderr=subprocess.STDOUT)
        self.exited_at = None


@dataclass
class Timeline:
    faults: list = field(default_factory=list)  # (started, name, kind)
    # Instants a process serving API requests was killed (a web process, PostgreSQL): a request in flight then was
    # on that process's own connection, and its failure is excused.
    serving_killed_at: list = field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=CYCLE_SECONDS / 60, help="how long faults go on")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("chaos_soak builds network namespaces: run it as root")
    if not shutil.which("redis-server"):
        raise SystemExit("chaos_soak needs redis-server (Debian: redis-server)")
    work = Path(tempfile.mkdtemp(prefix="chaos-soak-"))
    os.environ.update(DATABASE_URL=fresh_database_url("bench_chaos"), DJANGO_SETTINGS_MODULE="station.settings",
                      LOG_LEVEL="WARNING", MEDIA_ROOT=str(work / "media"))
    from station.tests.hosts import Hosts

    hosts = Hosts(3, database_url=os.environ["DATABASE_URL"])
    supervised: list[Supervised] = []
    try:
        figures = _soak(args, work, hosts, supervised)
    finally:
        for child in supervised:
            child.held = True
        # Whole trees: a django-q2 worker in a periodic loop outlives its stopped cluster, and one left over
        # took the next run's database (same name) and its health job's lock, its events going to a dead Redis.
        descendants = []
        for child in reversed(supervised):  # Redis, started first, goes last
            if child.process and child.process.poll() is None:
                with contextlib.suppress(psutil.Error):
                    descendants += psutil.Process(child.process.pid).children(recursive=True)
                child.process.send_signal(signal.SIGCONT)
                child.process.terminate()
        for child in supervised:
            if child.process:
                try:
                    child.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.process.kill()
        for process in descendants:
            with contextlib.suppress(psutil.Error):
                process.kill()
        hosts.close()
    print(json.dumps(figures["report"], indent=1))
    print(json.dumps({"bench": "chaos_soak", "figures": figures["figures"], "goal": figures["goal"],
                      "met": figures["met"]}))


def _soak(args, work: Path, hosts, supervised: list) -> dict:
    lan = str(hosts.lan)
    redis_url = f"redis://{hosts.root_address}:{REDIS_PORT}/0"
    station_url = f"http://{hosts.root_address}:{WEB_PORT}"
    common = {"REDIS_URL": redis_url, "STATION_URL": station_url, "OUTBOUND_ALLOWED_NETWORKS": f"127.0.0.0/8,{lan}",
              "ALLOWED_HOSTS": f"127.0.0.1,localhost,{hosts.root_address}", "PLAYOUT_HARBOR_PORTS": "8100-8199",
              "AGENT_LEASE_SECONDS": str(LEASE_SECONDS), "WEBHOOK_INTERVAL_SECONDS": "1"}
    os.environ.update(common)
    redis = Supervised("redis", ["redis-server", "--port", str(REDIS_PORT), "--bind", hosts.root_address, "--save", "",
                                 "--appendonly", "no", "--protected-mode", "no", "--dir", str(work)], {})
    redis.start()
    supervised.append(redis)
    wait_until(lambda: listening(REDIS_PORT, hosts.root_address), 10, "redis-server")

    import django

    django.setup()
    from django.core.management import call_command

    _say("migrating")
    call_command("migrate", interactive=False, verbosity=0)
    call_command("createcachetable", verbosity=0)
    call_command("setup_schedules", verbosity=0)
    from station import launcher, queues

    world = _seed(work, hosts)
    logs = work / "logs"
    logs.mkdir()
    for child in launcher.web_processes(host=hosts.root_address, port=WEB_PORT, count=2):
        supervised.append(Supervised(child.name, child.argv, child.env, child.pass_fds, log=logs / "web.log"))
    for queue in queues.QUEUES:
        child = launcher.queue_cluster(queue)
        supervised.append(Supervised(child.name, child.argv, child.env, log=logs / f"{queue}.log"))
    for host in hosts.hosts:
        env = {"DATABASE_URL": host.database_url, "PLAYOUT_SHARED_MEDIA": "false",
               "PLAYOUT_CACHE_ROOT": str(work / f"{host.name}-cache")}
        supervised.append(Supervised(f"agent {host.name}", host.command(sys.executable, str(ROOT / "manage.py"),
                                                                        "run_node", "--name", host.name), env,
                                     log=logs / f"{host.name}.log"))
    for child in supervised[1:]:
        child.start()
    by_name = {child.name: child for child in supervised}
    stop = threading.Event()
    threading.Thread(target=_supervise, args=(supervised, stop), daemon=True).start()
    sampler = RssSampler()
    sampler.start()

    from playout import services as playout_services
    from playout.models import Channel
    from station.models import Node

    _say("waiting for the agents")
    wait_until(lambda: all(node.is_online() for node in Node.objects.all()), 60, "the three agents online")
    for channel in Channel.objects.select_related("node"):
        playout_services.channel_restart(channel=channel)
    wait_until(lambda: Channel.objects.filter(status=Channel.Status.RUNNING).count() == 3, 90, "three channels on air")
    from django.db import connection

    placements = _Placements(hosts, {key: value for key, value in connection.get_connection_params().items()
                                     if key not in ("cursor_factory", "connect_timeout")})
    listeners = [_Listener(channel_id, port, placements) for channel_id, port in world["channels"].items()]
    dashboards = _Dashboards(f"ws://{hosts.root_address}:{WEB_PORT}/ws/studios/{world['studio']}/", world["token"],
                             origin=station_url, count=DASHBOARDS)
    api = _ApiClient(f"{station_url}/api/v1/channels/", world["token"])
    receiver = world["receiver"]
    for watcher in (placements, *listeners, dashboards, api):
        watcher.start()
    wait_until(lambda: dashboards.connected() == DASHBOARDS, 60, "dashboards connected")
    wait_until(lambda: all(listener.audible and time.time() - listener.audible[-1] < 0.5 for listener in listeners),
               60, "every channel heard")

    _say("on air; faults begin")
    timeline = Timeline()
    faults_started = time.time()
    _record_windows(world, faults_started, args.minutes * 60)
    cycles = max(1, round(args.minutes * 60 / CYCLE_SECONDS))
    for cycle in range(cycles):
        begun = faults_started + cycle * CYCLE_SECONDS
        for offset, name, kind in FAULTS:
            _sleep_until(begun + offset)
            _watch_memory(sampler, by_name)
            timeline.faults.append((time.time(), name, kind))
            _say(name)
            _inject(name, by_name, hosts, timeline)
        _sleep_until(begun + CYCLE_SECONDS)
    time.sleep(SETTLE_SECONDS)
    ended = time.time()
    for watcher in (placements, *listeners, dashboards, api):
        watcher.stop()
    stop.set()
    sampler.running = False
    from django.db import connections

    connections.close_all()  # PostgreSQL was restarted under this process's connection
    _say("auditing")
    return _audit(world, timeline, placements, listeners, dashboards, api, receiver, faults_started, ended, sampler,
                  cycles)


# -- the station under test ------------------------------------------------------------------------

def _seed(work: Path, hosts) -> dict:
    """The studio, its channels on the three hosts, recorders of the clock source, a dashboard token, a webhook."""
    from django.conf import settings
    from rest_framework.authtoken.models import Token

    from ingest.media import generate_tone
    from ingest.services import asset_register_file
    from playout.models import Channel, Playlist, PlaylistItem
    from recorders.models import Recorder
    from recorders.tests.clock_source import ClockSource
    from station.models import EventType, Node, Studio, Webhook
    from station.tests.factories import member_of

    Path(settings.MEDIA_ROOT).mkdir(parents=True, exist_ok=True)
    studio = Studio.objects.create(name="Chaos FM", slug="chaos", time_zone="Europe/Berlin")
    user = member_of(studio, username="desk")
    filler = Playlist.objects.create(studio=studio, name="Filler")
    tone = generate_tone(Path(settings.MEDIA_ROOT) / "library" / "tone.mp3", frequency=440, seconds=4)
    PlaylistItem.objects.create(playlist=filler, position=0, asset=asset_register_file(studio=studio, path=tone,
                                                                                     title="Tone"))
    channels = {}  # id: its harbor's port
    for number, host in enumerate(hosts.hosts, start=1):
        node = Node.objects.create(name=host.name, capabilities=["record", "playout"])
        channel = Channel.objects.create(  # started once the agents are up (_go_on_air)
            studio=studio, name=f"Air {number}", slug=f"air-{number}", node=node, status=Channel.Status.STOPPED,
            fallback_playlist=filler, output_settings={"port": HARBOR_PORT + number, "mount": "air"})
        channels[channel.pk] = HARBOR_PORT + number
    clock = ClockSource(work / "clock", address=hosts.root_address)
    recorders = [Recorder.objects.create(studio=studio, name=f"Studio mic {n}", source_url=clock.url,
                                         output_format="wav") for n in range(1, RECORDERS + 1)]
    receiver = _WebhookReceiver(hosts.root_address)
    Webhook.objects.create(studio=studio, name="Archive", url=receiver.url,
                           event_types=[EventType.ON_AIR, EventType.SCHEDULE, EventType.CHANNEL])
    return {"studio": studio.pk, "channels": channels, "recorders": [r.pk for r in recorders], "clock": clock,
            "token": Token.objects.create(user=user).key, "receiver": receiver, "root": hosts.root_address}


def _record_windows(world: dict, start: float, seconds: float) -> None:
    from recorders.models import Recorder, RecorderSchedule

    first = datetime.fromtimestamp(start, tz=UTC).replace(microsecond=0) + timedelta(seconds=10)
    for recorder in Recorder.objects.filter(pk__in=world["recorders"]):
        at = first
        while at < first + timedelta(seconds=seconds):
            RecorderSchedule.objects.create(recorder=recorder, name=f"{recorder.name} {at:%H:%M:%S}", start_at=at,
                                            end_at=at + timedelta(seconds=WINDOW_SECONDS))
            at += timedelta(seconds=WINDOW_SECONDS)


def _supervise(supervised: list, stop: threading.Event) -> None:
    while not stop.is_set():
        for child in supervised:
            if child.held or child.process is None or child.process.poll() is None:
                continue
            if child.exited_at is None:
                child.exited_at = time.monotonic()
            elif time.monotonic() - child.exited_at >= 1.0:
                child.start()
        time.sleep(0.1)


def _children_of(pid: int, name: str) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True) if p.name() == name]
    except psutil.Error:
        return []


def _inject(name: str, by_name: dict, hosts, timeline: Timeline) -> None:
    """Do the fault ``name`` now; the ones that end later end on a thread of their own."""
    if name == "kill agent host-1":
        by_name["agent host-1"].process.kill()
    elif name == "kill engine on host-2":
        for pid in _children_of(by_name["agent host-2"].process.pid, "liquidsoap"):
            os.kill(pid, signal.SIGKILL)
    elif name == "kill a playout cluster worker":
        workers = psutil.Process(by_name["playout jobs"].process.pid).children(recursive=True)
        if workers:
            workers[-1].kill()
    elif name == "kill a web process":
        timeline.serving_killed_at.append(time.time())
        by_name["web 1"].process.kill()
    elif name.startswith("SIGSTOP"):
        agent = by_name["agent host-3"]
        agent.held = True
        os.kill(agent.process.pid, signal.SIGSTOP)

        def wake():
            time.sleep(15)
            os.kill(agent.process.pid, signal.SIGCONT)
            agent.held = False
        threading.Thread(target=wake, daemon=True).start()
    elif name.startswith("cut host-2"):
        host = hosts.hosts[1]
        hosts.cut_database(host)
        threading.Timer(20, hosts.restore_database, args=(host,)).start()
    elif name == "restart PostgreSQL":
        from pgserver._commands import pg_ctl  # as pgserver runs it: as its own system user when we are root

        from station import startup

        data = startup.var_dir() / "pg"
        timeline.serving_killed_at.append(time.time())  # a fast shutdown ends every backend at once
        began = time.monotonic()
        pg_ctl(["-w", "-m", "fast", "-l", str(data / "log"), "restart"], pgdata=data, user="pgserver", timeout=60)
        _say(f"PostgreSQL answers again after {time.monotonic() - began:.1f} s")


def _watch_memory(sampler: RssSampler, by_name: dict) -> None:
    for name, child in by_name.items():
        if child.process is not None and child.process.poll() is None and name != "redis":
            kind = name.split(" ")[0] if name.startswith(("web", "agent")) else name
            sampler.trees[child.process.pid] = kind


def _say(what: str) -> None:
    print(f"[chaos_soak {time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


# -- what users meet -------------------------------------------------------------------------------

class _Watcher(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


class _Placements(_Watcher):
    """Where each channel is, as the database says, every 0.25 s: [(since, channel id, node name, epoch)]."""

    def __init__(self, hosts, connection_params: dict):
        super().__init__()
        self.connection_params = connection_params
        self.addresses = {host.name: host.address for host in hosts.hosts}
        self.history: list[tuple[float, int, str | None, int]] = []
        self.now: dict[int, tuple[str | None, int]] = {}

    def run(self) -> None:
        import psycopg

        while not self.stopping.is_set():
            try:
                with psycopg.connect(**self.connection_params, connect_timeout=2, autocommit=True) as conn:
                    while not self.stopping.is_set():
                        for channel_id, node, epoch in conn.execute(
                                "SELECT c.id, n.name, c.lease_epoch FROM playout_channel c "
                                "LEFT JOIN station_node n ON n.id = c.node_id ORDER BY c.id"):
                            if self.now.get(channel_id) != (node, epoch):
                                self.now[channel_id] = (node, epoch)
                                self.history.append((time.time(), channel_id, node, epoch))
                        time.sleep(0.25)
            except psycopg.Error:
                time.sleep(0.5)  # PostgreSQL restarting: the placements stay as last seen

    def address(self, channel_id: int) -> str | None:
        node = self.now.get(channel_id, (None, 0))[0]
        return self.addresses.get(node)


class _Listener(_Watcher):
    """A listener of one channel: decodes its stream from the host it is on, following it when it moves, and notes
    each 0.1 s of audio as it arrives, audible or not."""

    def __init__(self, channel_id: int, port: int, placements: _Placements):
        super().__init__()
        self.channel_id, self.port, self.placements = channel_id, port, placements
        self.audible: list[float] = []  # arrival instants of audible tenths of a second
        self.connections: list[list[tuple[float, bool]]] = []  # per connection: its tenths (arrival, audible)

    def run(self) -> None:
        decoder, address = None, None
        while not self.stopping.is_set():
            wanted = self.placements.address(self.channel_id)
            if decoder is None or wanted != address or decoder.poll() is not None:
                if decoder is not None:
                    decoder.kill()
                    decoder.wait()
                address, decoder = wanted, None
                if address is not None:
                    # A small probe: ffmpeg decodes from the first frames. With 32 KB it waited for 2 s of a fresh
                    # engine's 128 kbit/s stream first, which counted a second more dead air than the stream had.
                    decoder = subprocess.Popen(
                        ["ffmpeg", "-nostdin", "-loglevel", "quiet", "-rw_timeout", "2000000", "-fflags", "nobuffer",
                         "-probesize", "2048", "-analyzeduration", "0", "-f", "mp3", "-i",
                         f"http://{address}:{self.port}/air", "-ac", "1", "-ar", "8000", "-f", "s16le", "pipe:1"],
                        stdout=subprocess.PIPE)
                    threading.Thread(target=self._hear, args=(decoder,), daemon=True).start()
            time.sleep(0.1)
        if decoder is not None:
            decoder.kill()

    def _hear(self, decoder: subprocess.Popen) -> None:
        from array import array

        heard = []  # this connection's 0.1 s pieces, in stream order: (arrival, audible)
        self.connections.append(heard)
        while chunk := decoder.stdout.read(1600):  # 0.1 s
            samples = array("h", chunk[:len(chunk) // 2 * 2])
            audible = bool(samples) and (sum(x * x for x in samples) / len(samples)) ** 0.5 > AUDIBLE_RMS
            heard.append((time.time(), audible))
            if audible:
                self.audible.append(time.time())

    def dead_air(self, start: float, end: float) -> list[tuple[float, float]]:
        """The stretches of [start, end] without audible audio for more than half a second, as a listener with a
        player's buffer hears them: between connections (the stream gone) by the wall clock, from the last audible
        piece to the next one heard; within one, by the stream's own time (silent pieces in a row), so audio that
        arrives late but whole, on a busy machine, is not taken for silence."""
        silent, last_heard = [], start
        for heard in self.connections:
            pieces = [(arrival, audible) for arrival, audible in heard if start <= arrival <= end]
            begins = next((n for n, (_arrival, audible) in enumerate(pieces) if audible), None)
            if begins is None:
                continue
            if pieces[begins][0] - last_heard > 0.5:
                silent.append((last_heard, pieces[begins][0]))
            quiet_since, quiet = None, 0
            for arrival, audible in pieces[begins:]:
                if audible:
                    if quiet * 0.1 > 0.5:
                        silent.append((quiet_since, quiet_since + quiet * 0.1))
                    quiet_since, quiet = None, 0
                    last_heard = arrival
                else:
                    quiet_since, quiet = quiet_since or arrival, quiet + 1
        if end - last_heard > 0.5:
            silent.append((last_heard, end))
        return silent


class _Dashboards(_Watcher):
    """``count`` dashboards on the studio's socket, each reconnecting with ``since=`` its last event when dropped."""

    def __init__(self, url: str, token: str, *, origin: str, count: int):
        super().__init__()
        self.url, self.token, self.origin, self.count = url, token, origin, count
        self.clients = [{"first": None, "seqs": set(), "snapshots": [], "reconnects": 0, "open": False,
                         "connected_at": []} for _ in range(count)]

    def connected(self) -> int:
        return sum(client["open"] for client in self.clients)

    def run(self) -> None:
        asyncio.run(self._all())

    async def _all(self) -> None:
        await asyncio.gather(*(self._client(client) for client in self.clients))

    async def _client(self, client: dict) -> None:
        import websockets

        last = None
        while not self.stopping.is_set():
            since = f"&since={last}" if last is not None else ""
            try:
                async with websockets.connect(f"{self.url}?token={self.token}{since}", origin=self.origin,
                                              open_timeout=10, ping_interval=None, max_size=None) as socket_:
                    client["open"] = True
                    client["connected_at"].append(time.time())
                    while not self.stopping.is_set():
                        try:
                            message = json.loads(await asyncio.wait_for(socket_.recv(), timeout=0.5))
                        except TimeoutError:
                            continue
                        if message["type"] == "snapshot":
                            client["snapshots"].append(message["seq"])
                            client["first"] = client["first"] or message["seq"]
                        elif message["type"] == "event":
                            client["seqs"].add(message["seq"])
                        last = max(last or 0, message["seq"])
            except (OSError, websockets.WebSocketException, TimeoutError):
                pass
            client["open"] = False
            if not self.stopping.is_set():
                client["reconnects"] += 1
                await asyncio.sleep(0.2)


class _ApiClient(_Watcher):
    """An automation client: GET every 0.2 s; notes (sent, answered, status or the error)."""

    def __init__(self, url: str, token: str):
        super().__init__()
        self.url, self.token = url, token
        self.results: list[tuple[float, float, object]] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            began = time.time()
            request = urllib.request.Request(self.url, headers={"Authorization": f"Token {self.token}"})
            try:
                # An automation client's patience: long enough to ride out a database restart, which the web tier
                # waits out in its connection pool; how long that took is in the figures (api_slowest_s).
                with urllib.request.urlopen(request, timeout=15) as response:
                    response.read()
                    outcome = response.status
            except urllib.error.HTTPError as error:
                outcome = error.code
            except (OSError, urllib.error.URLError) as error:
                outcome = type(error).__name__
            self.results.append((began, time.time(), outcome))
            time.sleep(max(0.0, 0.2 - (time.time() - began)))


class _WebhookReceiver:
    """The webhook's receiver: notes each delivery's event seq and its id (the idempotency key), answers 200."""

    def __init__(self, address: str):
        from station.tests.http_servers import QuietHandler, serve_in_background

        self.received: dict[int, set[str]] = defaultdict(set)
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.received[body["seq"]].add(self.headers["X-Stationkeeper-Delivery"])
                self.send_response(200)
                self.end_headers()

        self.server = serve_in_background(Handler, address)
        self.url = f"http://{address}:{self.server.server_address[1]}/hook"


# -- the audit -------------------------------------------------------------------------------------

def _fault_at(timeline: Timeline, moment: float) -> tuple[str, str] | None:
    """The faults whose windows hold ``moment``: (their names, joined by " + ", and the kind among them that may cost
    the most air: what overlapping faults do together is judged by the most tolerant goal)."""
    faults = [(name, kind) for started, name, kind in timeline.faults
              if started <= moment < started + FAULT_WINDOW_SECONDS]
    if not faults:
        return None
    return " + ".join(name for name, _ in faults), max((kind for _, kind in faults), key=DEAD_AIR_GOAL.__getitem__)


def _audit(world, timeline, placements, listeners, dashboards, api, receiver, start, end, sampler, cycles) -> dict:
    from playout.models import AsRunEntry
    from recorders.models import RecorderSchedule
    from django.db.models import Count

    from station.models import EventType, StudioEvent

    report = {"faults": [(datetime.fromtimestamp(t, tz=UTC).isoformat(), name) for t, name, _kind in timeline.faults]}

    # Recording windows: each ended one completed once, its asset the window's length.
    windows = RecorderSchedule.objects.filter(recorder_id__in=world["recorders"],
                                              end_at__lte=datetime.fromtimestamp(end - 15, tz=UTC))
    window_rows = []
    for window in windows.select_related("session__asset").order_by("start_at"):
        session = getattr(window, "session", None)
        asset = session.asset if session else None
        length = (window.end_at - window.start_at).total_seconds()
        gaps = sum((datetime.fromisoformat(g[1]) - datetime.fromisoformat(g[0])).total_seconds()
                   for g in (session.gaps if session else []) if g[1])
        window_rows.append({"window": window.name, "status": window.status, "error": window.error_message[:120],
                            "duration": asset.duration_seconds if asset else None, "length": length,
                            "gaps_s": round(gaps, 2), "takeovers": window.lease_epoch - 1})
    lost = [row for row in window_rows if row["status"] != RecorderSchedule.Status.COMPLETED]
    wrong_length = [row for row in window_rows if row["status"] == RecorderSchedule.Status.COMPLETED
                    and abs((row["duration"] or 0) - row["length"]) > 0.05]
    report["windows"] = window_rows

    # As-run: one open row per channel at most, no overlap, nothing written by a node that didn't hold the channel.
    overlaps, open_rows, fenced_writes = 0, 0, []
    tenures = defaultdict(list)  # channel → [(from, until, node)]: who held it when
    for channel_id in world["channels"]:
        moves = [(since, node) for since, held, node, _epoch in placements.history if held == channel_id]
        tenures[channel_id] = [(since, following[0] if following else float("inf"), node)
                               for (since, node), following in zip(moves, [*moves[1:], None])]
    for channel_id in world["channels"]:
        rows = list(AsRunEntry.objects.filter(channel_id=channel_id, started_at__gte=datetime.fromtimestamp(
            start, tz=UTC)).select_related("node").order_by("started_at"))
        open_rows = max(open_rows, sum(row.ended_at is None for row in rows))
        for row, following in zip(rows, rows[1:]):
            if row.ended_at is None or row.ended_at > following.started_at + timedelta(milliseconds=1):
                overlaps += 1
        for row in rows:
            at, node = row.started_at.timestamp(), row.node.name if row.node else None
            holder = next((n for f, t, n in tenures[channel_id] if f - 1 <= at < t + 1 and n == node), None)
            if holder is None:
                fenced_writes.append((channel_id, node, row.started_at.isoformat(), row.title))
    report["fenced_writes"] = fenced_writes

    # Dead air per channel, put down to the fault it followed: the longest stretch per fault and per kind of fault.
    dead_air, dead_air_by_kind, stretches = defaultdict(float), defaultdict(float), []
    for listener in listeners:
        for silent_from, silent_to in listener.dead_air(start, end):
            name, kind = _fault_at(timeline, silent_from) or ("no fault", "none")
            dead_air[name] = max(dead_air[name], round(silent_to - silent_from, 1))
            dead_air_by_kind[kind] = max(dead_air_by_kind[kind], silent_to - silent_from)
            stretches.append((datetime.fromtimestamp(silent_from, tz=UTC).isoformat(), listener.channel_id,
                              round(silent_to - silent_from, 1), name))
    report["dead_air_longest_s"] = dict(dead_air)
    report["dead_air"] = sorted(stretches)  # (from, channel, seconds, the fault it followed)

    # Dashboard events: every one of the studio's events after a dashboard's first snapshot reached it.
    events = list(StudioEvent.objects.filter(studio_id=world["studio"]).values_list("id", "type", "created_at"))
    lost_events, missed = 0, defaultdict(list)
    for number, client in enumerate(dashboards.clients):
        if client["first"] is None:
            lost_events += len(events)
            continue
        covered = max(client["snapshots"])
        for seq, kind, created in events:
            if covered < seq <= max(client["seqs"] | {covered}) and seq not in client["seqs"]:
                lost_events += 1
                # with when that dashboard last connected before it: a loss on a live socket or around a reconnect
                last_connect = max((t for t in client["connected_at"] if t <= created.timestamp()), default=None)
                missed[f"{seq} {kind} {created:%H:%M:%S.%f}"].append(
                    (number, datetime.fromtimestamp(last_connect, tz=UTC).strftime("%H:%M:%S.%f") if last_connect else None))
    report["events_lost"] = dict(missed)
    report["dashboard_reconnects"] = sum(client["reconnects"] for client in dashboards.clients)

    # Webhooks: every subscribed event received at least once, with its delivery id.
    subscribed = {EventType.ON_AIR.value, EventType.SCHEDULE.value, EventType.CHANNEL.value}
    hooked = [seq for seq, kind, _created in events if kind in subscribed]
    deadline = time.monotonic() + WEBHOOK_GRACE_SECONDS  # the last events' deliveries may still be on their way
    while any(not receiver.received.get(seq) for seq in hooked) and time.monotonic() < deadline:
        time.sleep(0.5)
    webhook_lost = [seq for seq in hooked if not receiver.received.get(seq)]
    from station.models import WebhookDelivery

    report["webhook_deliveries"] = dict(WebhookDelivery.objects.values_list("status").annotate(n=Count("id")))
    report["webhook_lost"] = webhook_lost

    # API: failures, those in flight on a killed process's own connections (web, PostgreSQL) apart.
    failures, slowest = defaultdict(int), defaultdict(float)
    excused = 0
    for began, answered, outcome in api.results:
        fault = (_fault_at(timeline, began) or ("no fault",))[0]
        slowest[fault] = max(slowest[fault], answered - began)
        if outcome == 200:
            continue
        if any(began <= killed <= answered for killed in timeline.serving_killed_at):
            excused += 1
            continue
        failures[f"{fault}: {outcome}"] += 1
    report["api_failures"] = dict(failures)
    report["api_slowest_s"] = {name: round(seconds, 2) for name, seconds in slowest.items()}

    figures = {
        "cycles": cycles, "minutes": round((end - start) / 60, 1),
        "windows": len(window_rows), "windows_lost": len(lost), "windows_wrong_length": len(wrong_length),
        "windows_taken_over": sum(row["takeovers"] > 0 for row in window_rows),
        "as_run_overlaps": overlaps, "as_run_open_rows_max": open_rows, "fenced_writes": len(fenced_writes),
        "dead_air_longest_s": {kind: round(seconds, 1) for kind, seconds in dead_air_by_kind.items()},
        "events": len(events), "events_lost": lost_events, "webhook_events": len(hooked),
        "webhook_lost": len(webhook_lost), "api_requests": len(api.results),
        "api_failures": sum(failures.values()), "api_failures_excused": excused,
        **sampler.figures(),
    }
    goal = {"windows_lost": 0, "windows_wrong_length": 0, "fenced_writes": 0, "as_run_overlaps": 0,
            "as_run_open_rows_max": 1, "dead_air_longest_s": DEAD_AIR_GOAL, "events_lost": 0, "webhook_lost": 0,
            "api_failures": 0}
    met = (figures["windows_lost"] == 0 and figures["windows_wrong_length"] == 0 and figures["fenced_writes"] == 0
           and overlaps == 0 and open_rows <= 1 and lost_events == 0 and not webhook_lost and not failures
           and all(seconds <= DEAD_AIR_GOAL.get(kind, 0.0) for kind, seconds in dead_air_by_kind.items()))
    return {"report": report, "figures": figures, "goal": goal, "met": met}


if __name__ == "__main__":
    main()
