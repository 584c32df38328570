"""What every bench needs: a dedicated database on the embedded PostgreSQL, percentiles, peak RSS."""

import array
import bisect
import contextlib
import os
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RATE, BYTES_PER_FRAME = 44100, 4  # an engine's WAV output: 16-bit stereo
LOUD, QUIET_BEFORE_ONSET = 300, SAMPLE_RATE // 10


def fresh_database_url(name: str) -> str:
    """Start the embedded PostgreSQL (var/pg) and return the URL of a new, empty database ``name``."""
    import psycopg

    from station import embedded_db, startup

    startup.prepare()  # var/ and the secret key, as for manage.py
    config = embedded_db.start(startup.var_dir() / "pg")  # the embedded server even when DATABASE_URL is set
    admin = embedded_db.database_url({**config, "NAME": "postgres"})
    with psycopg.connect(f"host={config['HOST']} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + f"/{name}"


class StreamTap:
    """Reads an engine's WAV output from a named pipe and notes when each chunk arrived."""

    def __init__(self, path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        os.chmod(path, 0o666)  # the engine writes it without root (ENGINE_USER)
        self.chunks: list[tuple[float, int, bytes]] = []  # (arrival, byte offset, data)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        fd = os.open(self.path, os.O_RDONLY)
        offset = 0
        while data := os.read(fd, 1 << 16):
            self.chunks.append((time.time(), offset, data))
            offset += len(data)

    def pcm(self) -> tuple[bytes, int, float]:
        """The stream's whole 16-bit stereo frames so far, the byte offset of the first in the stream, and the stream's
        anchor on the wall clock: frame ``i`` left the engine, paced, at ``anchor + i / SAMPLE_RATE`` (the earliest
        chunk arrival less its position)."""
        stream = b"".join(data for _, _, data in self.chunks)
        data_start = stream.index(b"data") + 8
        anchor = min(arrival - (offset - data_start) / BYTES_PER_FRAME / SAMPLE_RATE
                     for arrival, offset, _ in self.chunks if offset >= data_start)
        whole = (len(stream) - data_start) // BYTES_PER_FRAME * BYTES_PER_FRAME
        return stream[data_start:data_start + whole], data_start, anchor

    def left(self) -> tuple[array.array, int, float]:
        """The left channel's samples so far, with ``pcm``'s offset and anchor."""
        frames, data_start, anchor = self.pcm()
        samples = array.array("h")
        samples.frombytes(frames)
        return samples[0::2], data_start, anchor

    def onsets(self) -> list[tuple[float, float]]:
        """(stream time, time its chunk arrived) of every sound that follows at least 0.1 s of silence."""
        left, data_start, anchor = self.left()
        audio_chunks = [(arrival, (offset - data_start) // BYTES_PER_FRAME) for arrival, offset, _ in self.chunks
                        if offset >= data_start]
        firsts = [first for _, first in audio_chunks]
        found, quiet = [], QUIET_BEFORE_ONSET
        for index, value in enumerate(left):
            if abs(value) > LOUD:
                if quiet >= QUIET_BEFORE_ONSET:
                    arrival, first = audio_chunks[max(0, bisect.bisect_right(firsts, index) - 1)]
                    found.append((anchor + index / SAMPLE_RATE, arrival + (index - first) / SAMPLE_RATE))
                quiet = 0
            else:
                quiet += 1
        return found


def wait_until(predicate, timeout: float, what: str = ""):
    """Poll ``predicate`` every 50 ms and return its first truthy value; stop the bench after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"bench timed out waiting for {what or predicate}")


def listening(port: int, address: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on ``address:port`` now."""
    with socket.socket() as probe:
        return probe.connect_ex((address, port)) == 0


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class RssSampler(threading.Thread):
    """Peak memory of watched processes: resident (RSS) and proportional (PSS: pages shared after fork or between
    processes split among them, so a tree's PSS sum is what it really holds; RSS counts shared pages in each).

    ``pids``: per process name, with their children (the largest process of each name).
    ``trees``: pid → label, the peak of the whole tree's sum (a django-q2 cluster is a
    sentinel and its workers). ``alone``: pid → label, that process without its children.
    ``groups``: label → pids, processes that are no tree (web processes sharing a socket, client
    processes): the peak of their sum ("LABEL, together") and of the largest ("LABEL, largest").
    A tree also reports its largest process ("LABEL, largest process"): one worker that grows stands out there.

    ``with sampler.phase(NAME):`` keeps the peaks of that stretch apart as well (``phase_figures(NAME)``), so one
    run can compare, say, a worker's memory on small files with its memory on large ones.
    """

    def __init__(self):
        super().__init__(daemon=True)
        self.pids, self.trees, self.alone, self.groups, self.running = set(), {}, {}, {}, True
        self.peak_mb, self.peak_pss_mb = {}, {}
        self.phases, self._phase_peaks = {}, None

    @contextlib.contextmanager
    def phase(self, name: str):
        self._phase_peaks = self.phases.setdefault(name, ({}, {}))
        try:
            yield
        finally:
            self._phase_peaks = None

    def phase_figures(self, name: str) -> dict:
        rss, pss = self.phases[name]
        return {"peak_rss_mb": {key: round(mb, 1) for key, mb in sorted(rss.items())},
                "peak_pss_mb": {key: round(mb, 1) for key, mb in sorted(pss.items())}}

    def _peak(self, key: str, processes) -> None:
        memories = [process.memory_full_info() for process in processes]
        self._note(key, sum(memory.rss for memory in memories), sum(memory.pss for memory in memories))
        if len(memories) > 1:
            self._note(f"{key}, largest process", max(memory.rss for memory in memories),
                       max(memory.pss for memory in memories))

    def _note(self, key: str, rss: int, pss: int) -> None:
        peaks = [(self.peak_mb, self.peak_pss_mb)]
        if self._phase_peaks is not None:
            peaks.append(self._phase_peaks)
        for peak_mb, peak_pss_mb in peaks:
            peak_mb[key] = max(peak_mb.get(key, 0), rss / 2**20)
            peak_pss_mb[key] = max(peak_pss_mb.get(key, 0), pss / 2**20)

    def _peak_of_group(self, label: str, pids) -> None:
        import psutil

        memories = []
        for pid in pids:
            try:
                memories.append(psutil.Process(pid).memory_full_info())
            except psutil.Error:  # exited meanwhile
                pass
        if memories:
            self._note(f"{label}, together", sum(memory.rss for memory in memories), sum(memory.pss for memory in memories))
            self._note(f"{label}, largest", max(memory.rss for memory in memories), max(memory.pss for memory in memories))

    def figures(self) -> dict:
        """The peaks, for a benchmark's figures."""
        return {"peak_rss_mb": {name: round(mb, 1) for name, mb in sorted(self.peak_mb.items())},
                "peak_pss_mb": {name: round(mb, 1) for name, mb in sorted(self.peak_pss_mb.items())}}

    def run(self):
        import psutil

        while self.running:
            for pid in [*self.pids, *self.trees, *self.alone]:
                try:
                    process = psutil.Process(pid)
                    if pid in self.alone:
                        self._peak(self.alone[pid], [process])
                        continue
                    tree = [process, *process.children(recursive=True)]
                    if pid in self.trees:
                        self._peak(self.trees[pid], tree)
                        continue
                    for p in tree:
                        self._peak(p.name(), [p])
                except psutil.Error:
                    pass
            for label, pids in list(self.groups.items()):
                self._peak_of_group(label, list(pids))
            time.sleep(0.2)


def start_web(port: int, count: int, server_env: dict, sampler: RssSampler, label: str) -> list[subprocess.Popen]:
    """``count`` Daphne processes on ``port``, started as run_station starts them (one listening socket, handed
    down), once each has loaded the application and listens (its log says so): the socket, open before
    them, would otherwise queue the first dashboards behind their start."""
    from station.launcher import web_processes

    servers, logs, children = [], [], web_processes(host="127.0.0.1", port=port, count=count)
    for child in children:
        log = tempfile.NamedTemporaryFile(prefix="bench-web-", suffix=".log")
        server = subprocess.Popen(child.argv, cwd=ROOT, env={**os.environ, **child.env, **server_env, "LOG_LEVEL": "INFO"},
                                  pass_fds=child.pass_fds, stdout=subprocess.DEVNULL, stderr=log)
        servers.append(server)
        logs.append(log)
        if count == 1:
            sampler.alone[server.pid] = label
        else:
            sampler.groups.setdefault(label, set()).add(server.pid)
    for descriptor in set(children[0].pass_fds):  # the listening socket is theirs now
        os.close(descriptor)
    wait_until(lambda: all(b"Listening on" in open(log.name, "rb").read() for log in logs), 60, "Daphne to listen")
    for log in logs:
        log.close()
    return servers


def stop_web(port: int, servers: list[subprocess.Popen]) -> None:
    for server in servers:
        server.terminate()
    for server in servers:
        server.wait()
    wait_until(lambda: not listening(port), 10, "Daphne to stop")
