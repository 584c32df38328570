"""The station's Prometheus metrics, declared once, and how each kind of process serves them (docs/metrics.md).

- web (Daphne): the web processes of a host count into one directory (prometheus_client's
  multiprocess mode, set up by station.startup), and ``/metrics`` on the web socket
  (station.views.metrics), answered by whichever process the kernel hands the scrape, reads
  them all: one target per host however many processes share the socket;
- jobs (a django-q2 cluster): its main process and its forked workers count into the
  cluster's directory; the main process serves it on the cluster's port (METRICS_PORTS, by
  queue name), with the depth of its queue read from the broker at each scrape;
- node (``manage.py run_node``): one process, counting in its own memory, served on the
  ``node`` port with the process's own figures (CPU, memory, open files).
Labels stay few: studio slugs, channel slugs, queue and job names, engine kinds.
"""

import contextlib
import fcntl
import hmac
import logging
import os
import threading
import time
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import psutil
from django.conf import settings
from django.db import close_old_connections
from django_q.brokers import get_broker
from django_q.conf import Conf
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import ThreadingWSGIServer, choose_encoder
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter(
    "stationkeeper_http_requests", "HTTP requests the web processes answered, by method, URL pattern and status.",
    ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "stationkeeper_http_request_duration_seconds", "Time the web processes took to answer a request, by method and "
    "URL pattern.", ["method", "route"], buckets=SECONDS)
WEBSOCKET_CLIENTS = Gauge(
    "stationkeeper_websocket_clients", "Dashboards connected to a studio's websocket.", multiprocess_mode="livesum")
QUEUE_DEPTH = Gauge(
    "stationkeeper_queue_depth", "Jobs waiting in a queue, as its broker counts them when scraped.", ["queue"],
    multiprocess_mode="livemostrecent")
QUEUE_WAIT = Histogram(
    "stationkeeper_queue_wait_seconds", "Time from a job's enqueueing to a worker of its queue's cluster picking it up.",
    ["queue"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
PERIODIC_LAG = Histogram(
    "stationkeeper_periodic_lag_seconds", "How late a looping periodic job's pass began after it was due.", ["job"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
RECORDING_START_ERROR = Histogram(
    "stationkeeper_recording_start_error_seconds", "A recording's first sample minus its window's first instant "
    "(its start less the recorder's pre-roll).", ["studio"], buckets=(*SECONDS, 15, 60))
ON_AIR_START_ERROR = Histogram(
    "stationkeeper_on_air_start_error_seconds", "A scheduled item's start in the as-run log minus its slot "
    "(negative: early).", ["channel"], buckets=(0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
CHANNEL_FAILOVERS = Counter(
    "stationkeeper_channel_failovers", "Channels the health job moved to another node.", ["channel"])
RECORDING_TAKEOVERS = Counter(
    "stationkeeper_recording_takeovers", "Recordings an agent took over from one that stopped renewing its lease.",
    ["studio"])
DEAD_AIR = Counter(
    "stationkeeper_dead_air_seconds", "Time a channel placed on a node to be on air had no engine answering there, "
    "as that node's agent saw it.", ["channel"])
SILENT_AIR = Counter(
    "stationkeeper_silent_air_seconds", "Dead air in the audio: a channel's output silent while something should "
    "have played, until its engine moved on (counted as each is declared).", ["channel"])
LIVE_REFUSALS = Counter(
    "stationkeeper_live_refusals", "Source clients a channel's live input refused, by reason (wrong credentials, "
    "revoked, outside the show's slot and margin, another source connected).", ["reason"])
OUTPUT_LEVEL = Gauge(
    "stationkeeper_output_level_dbfs", "A channel's output level (RMS over 0.2 s), as its engine last reported it "
    "(each second).", ["channel"], multiprocess_mode="livemostrecent")
ENGINE_RESTARTS = Counter(
    "stationkeeper_engine_restarts", "Engines started again after they died: a channel's Liquidsoap, a recording's "
    "ffmpeg.", ["engine"])

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # any other is counted as "other"
BIND_RETRY_SECONDS = 30  # a port held by another process of the same kind (a replica, an orphan) is tried again
ENDED = "ended"  # what stands for the pid in the name of the files that hold the counts of processes that ended
# Read as prometheus_client read it on import: an entry point importing station.asgi later (runserver) changes nothing.
SHARED_DIRECTORY = os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def request_answered(*, method: str, route: str, status: int, seconds: float) -> None:
    """Count a request the web answered; ``route`` is its URL pattern ("" when none matched)."""
    method = method if method in METHODS else "other"  # a client picks the method: it must not mint series
    route = route or "unmatched"
    REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    REQUEST_SECONDS.labels(method=method, route=route).observe(seconds)


def authorized(header: str) -> bool:
    """Whether an ``Authorization`` header carries METRICS_TOKEN as a bearer token."""
    scheme, _, token = header.partition(" ")
    return bool(settings.METRICS_TOKEN) and scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), settings.METRICS_TOKEN.encode())


def read_queue_depth(queue: str) -> None:
    """Set the queue's depth from its broker (a cluster's exporter, before each scrape is answered)."""
    close_old_connections()  # a thread that lives as long as the cluster: its connection may have gone stale
    QUEUE_DEPTH.labels(queue=queue).set(get_broker(queue).queue_size())


def exposition(*, accept: str) -> tuple[bytes, str]:
    """This process's metrics (its whole tree's in multiprocess mode) as the scraper accepts them, and their type."""
    if SHARED_DIRECTORY:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SharedDirectory(Path(SHARED_DIRECTORY)))
    else:
        registry = REGISTRY
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


# A process's file is created empty, then sized and given its header: read in between, it fails the whole scrape.
HEADER_BYTES = 8


def _begun(path: Path) -> bool:
    """Whether a process's file has its header yet (one that just started is read at the next scrape)."""
    try:
        return path.stat().st_size >= HEADER_BYTES
    except FileNotFoundError:  # its process ended and the file was folded meanwhile
        return False


_FOLDING = threading.Lock()


class SharedDirectory:
    """The counts of every process writing to one directory, read under a lock while those of ended ones are folded.

    A process that ends leaves its files behind: their counts stay part of the totals, which
    therefore never go back (Prometheus would read a drop as a restart). Folding them into one
    file per type keeps the directory to a file per live process, though django-q2 replaces a
    worker every few hundred jobs. A live gauge (websocket clients) ends with its process.
    """

    def __init__(self, directory: Path):
        self.directory = directory

    def collect(self):
        with self.folding():
            self._fold_ended()
            return list(MultiProcessCollector.merge([str(p) for p in self.directory.glob("*.db") if _begun(p)]))

    @contextlib.contextmanager
    def folding(self):
        """Held while one scrape reads and folds the directory: another thread or process may be answering one too.

        A POSIX record lock (``lockf``), not ``flock``: django-q2 forks workers from the process that answers a
        cluster's scrapes, and a worker forked while an ``flock`` was held would keep it, hanging every later scrape.
        Record locks are not inherited, and they order processes, not threads: ``_FOLDING`` orders this one's.
        """
        with _FOLDING, open(self.directory / "fold.lock", "a") as lock:
            fcntl.lockf(lock, fcntl.LOCK_EX)
            yield

    def _fold_ended(self) -> None:
        for path in self.directory.glob("*.db"):
            kind, _, pid = path.stem.rpartition("_")  # counter_123, histogram_123, gauge_livesum_123
            if not pid.isdigit() or psutil.pid_exists(int(pid)):
                continue
            if kind in ("counter", "histogram") and _begun(path):  # one that died before its header counted nothing
                folded = MmapedDict(str(self.directory / f"{kind}_{ENDED}.db"))
                try:
                    for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(str(path)):
                        folded.write_value(key, folded.read_value(key)[0] + value, 0.0)
                finally:
                    folded.close()
            path.unlink()


def serve(*, role: str) -> None:
    """Serve this process's metrics on its kind's port, in the background: a cluster's (by queue name), a node's.

    Nothing for other roles: the web answers on its own socket, commands serve none. A port
    already held (a replica of the cluster on this host shares its directory, so either one's
    answer holds both) is tried again every BIND_RETRY_SECONDS.
    """
    name = {"jobs": Conf.CLUSTER_NAME, "node": "node"}.get(role)
    port = settings.METRICS_PORTS.get(name)
    if port is None:
        if name is not None:
            logger.info("metrics: no port for %s in METRICS_PORTS; not serving them", name)
        return
    queue = Conf.CLUSTER_NAME if role == "jobs" else None
    threading.Thread(target=_serve_forever, args=(port, queue), name="metrics", daemon=True).start()


def _serve_forever(port: int, queue: str | None) -> None:
    def answer(environ, start_response):
        if environ["PATH_INFO"] != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if settings.METRICS_TOKEN and not authorized(environ.get("HTTP_AUTHORIZATION", "")):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"a bearer token is required\n"]
        if queue is not None:
            try:
                read_queue_depth(queue)
            except Exception as error:  # the broker is away (database or Redis): the scrape fails, and says why
                logger.warning("metrics: cannot read the depth of queue %s: %s", queue, error)
                start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
                return [f"queue {queue} unavailable: {error}\n".encode()]
        body, content_type = exposition(accept=environ.get("HTTP_ACCEPT", ""))
        start_response("200 OK", [("Content-Type", content_type)])
        return [body]

    told = False
    while True:
        try:
            server = make_server(settings.METRICS_ADDRESS, port, answer, ThreadingWSGIServer, handler_class=_Quiet)
            break
        except OSError as error:
            if not told:
                logger.warning("metrics: cannot listen on %s:%s (%s); trying again every %s s",
                               settings.METRICS_ADDRESS, port, error, BIND_RETRY_SECONDS)
                told = True
            time.sleep(BIND_RETRY_SECONDS)
    # django-q2 forks its workers from this process: a child must not keep the port open after it is gone
    os.register_at_fork(after_in_child=server.socket.close)
    logger.info("metrics: serving on http://%s:%s/metrics", settings.METRICS_ADDRESS, port)
    server.serve_forever()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args):
        """Scrapes come every few seconds: the log is for what goes wrong."""
