"""Ingest throughput against baselines, and playout-queue latency under an ingest flood.

- files: two sets of 200 distinct MP3s (1.9 MB and 4.0 MB each) served on loopback by a threaded
  HTTP server that paces every connection at 4 MB/s, as a remote podcast host would (unpaced
  loopback would only measure CPU copies on a 2-core box, not what a network shows).
- baselines, same files and server: `curl --parallel --parallel-immediate --parallel-max 8` (the
  pool's concurrency, at the ingest cluster's CPU priority, nice 10), and plain sequential
  `requests`, one file at a time, over 50 of the 4 MB files (a rate).
- ours: a URL-list source polled, 200 download jobs on the `ingest` django-q2 cluster
  (8 workers, started as `./scripts/run` starts it); the time runs from the poll until all 200
  assets are ready: fetched, checksummed, probed with ffprobe and stored. The goal is judged on
  the 4 MB set; the 1.9 MB set shows the fixed cost per file (job, ffprobe, database). The
  workers are warmed up first with 16 small downloads, as a running station's are.
- large files: 8 distinct 100 MB MP3s fetched by the pool at once (8 workers), the same pacing. The ingest
  cluster's tree (sentinel, workers, their ffprobe) is sampled for PSS meanwhile; the goal is under 500 MB, and
  its largest process may not grow with the file (peak PSS on the 100 MB set against the 4 MB set, within
  16 MB): a worker that buffered a whole file would show its size there.
- flood: 500 more download jobs (~1 MB files) queued on `ingest`; meanwhile 100 probe jobs go to the
  `playout` cluster, 50 ms apart, each reporting how long it waited. Baseline: one probe queued
  behind the flood on the same queue, as one shared queue would make it wait.

Run: .venv/bin/python bench/ingest_throughput.py   (starts the embedded PostgreSQL itself)
"""

import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_support import ROOT, RssSampler, fresh_database_url, percentile, wait_until

sys.path.insert(0, str(ROOT))
FILES, FLOOD, PROBES, WORKERS = 200, 500, 100, 8
SIZES = {"files_2mb": 120, "files_4mb": 250}  # seconds of 128 kbit/s MP3: 1.9 MB and 4.0 MB
LARGE_FILES, LARGE_FILE_MB = 8, 100
GROWTH_ALLOWED_MB = 16  # allocator noise and a few 1 MB chunks in flight; a buffered 100 MB file is far more
TREE_PSS_CEILING_MB = 500
GOAL_SET = "files_4mb"  # podcast episodes are larger still; the 2 MB set shows the fixed cost per file
SEQUENTIAL_SAMPLE = 50  # files fetched one at a time (a rate; all 200 would take 200 s)
PACE_BYTES_PER_SECOND = 4 * 2**20
WORK = ROOT / "var" / "bench-ingest"


def _tagged(audio: bytes, title: str) -> bytes:
    """The MP3 with an ID3v2.3 title of its own, so every file (and its checksum) is distinct."""
    text = b"\x00" + title.encode()
    frame = b"TIT2" + len(text).to_bytes(4, "big") + b"\x00\x00" + text
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame + audio


def _make_files(directory: Path, prefix: str, count: int, seconds: int, repeats: int = 1) -> list[Path]:
    """``count`` distinct MP3s of ``seconds`` of tone, played ``repeats`` times over (MPEG frames concatenate, and
    without a Xing header no frame claims the length of one piece): large files without encoding hours."""
    plain = directory / f"{prefix}-plain.mp3"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=440:sample_rate=44100:duration={seconds}", "-ac", "2", "-b:a", "128k",
                    "-id3v2_version", "0", "-write_xing", "0", str(plain)], check=True)
    audio = plain.read_bytes() * repeats
    plain.unlink()
    files = []
    for n in range(count):
        path = directory / f"{prefix}-{n:03d}.mp3"
        path.write_bytes(_tagged(audio, f"{prefix} {n}"))
        files.append(path)
    return files


def _serve(directory: Path, pace: int, pipe) -> None:
    from ingest.tests.media_server import MediaServer

    server = MediaServer()
    server.pace = pace
    for path in sorted(directory.glob("*.mp3")):
        server.add(path.name, path)
    pipe.send(server.base)
    while True:
        time.sleep(3600)


def _sequential_requests(urls: list[str], directory: Path) -> float:
    import requests

    directory.mkdir(parents=True)
    began = time.monotonic()
    with requests.Session() as session:
        for n, url in enumerate(urls):
            with session.get(url, stream=True, timeout=30) as response, (directory / f"{n}.mp3").open("wb") as out:
                response.raise_for_status()
                for chunk in response.iter_content(1 << 20):
                    out.write(chunk)
    return time.monotonic() - began


def _curl_parallel(urls: list[str], directory: Path, sampler: RssSampler) -> float:
    directory.mkdir(parents=True)
    config = directory / "curl.conf"
    config.write_text("".join(f'url = "{url}"\noutput = "{directory / f"{n}.mp3"}"\n' for n, url in enumerate(urls)))
    began = time.monotonic()
    # --parallel-immediate: open the connections at once; without it curl waits to multiplex on one (3x slower here).
    # At the ingest cluster's CPU priority, so both compete alike with whatever else the machine runs.
    curl = subprocess.Popen(["nice", "-n", "10", "curl", "--parallel", "--parallel-immediate", "--parallel-max",
                             str(WORKERS), "--no-progress-meter", "--fail", "-K", str(config)])
    sampler.trees[curl.pid] = "curl --parallel"
    if curl.wait() != 0:
        raise SystemExit("curl failed")
    return time.monotonic() - began


def _probe(queue: str, wait_ms: int) -> float | None:
    """Queue one probe job on ``queue``; return how long it waited there (s), None if it did not run in time."""
    from django_q.tasks import async_task, result

    return result(async_task("station.queues.waited", time.time(), cluster=queue), wait=wait_ms)


def _pool_seconds(studio, name: str, urls: list[str]) -> tuple[float, dict]:
    """Poll a URL list of ``urls`` and time until every download is finished; return the time and outcomes."""
    from django.utils import timezone

    from ingest import services
    from ingest.models import Download, IngestSource

    began = time.monotonic()
    source = IngestSource.objects.create(studio=studio, name=name, kind="url_list", url_list="\n".join(urls))
    services.sources_poll_due(now=timezone.now())
    finished = Download.objects.filter(source=source).exclude(status__in=["queued", "downloading"])
    wait_until(lambda: finished.count() == len(urls), 240, f"the pool's downloads of {name}")
    seconds = time.monotonic() - began
    downloads = Download.objects.filter(source=source)
    return seconds, {
        "completed": downloads.filter(status="completed", asset__status="ready", asset__duration_seconds__gt=0).count(),
        "failures": list(downloads.filter(status="failed").values_list("error_message", flat=True)[:3]),
    }


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "served").mkdir(parents=True)
    os.environ.update(DATABASE_URL=fresh_database_url("bench_ingest"), MEDIA_ROOT=str(WORK / "media"),
                      DJANGO_SETTINGS_MODULE="station.settings", LOG_LEVEL="WARNING", Q_INGEST_WORKERS=str(WORKERS),
                      Q_PLAYOUT_WORKERS="2",
                      OUTBOUND_ALLOWED_NETWORKS="127.0.0.1/32")  # the paced server is on loopback, as the admin allows
    sets = {label: _make_files(WORK / "served", label, FILES, seconds=seconds) for label, seconds in SIZES.items()}
    # 60 s of 128 kbit/s MP3 is 0.92 MB; 109 of them make a file just over 100 MB
    large_files = _make_files(WORK / "served", "large", LARGE_FILES, seconds=60, repeats=-(-LARGE_FILE_MB * 2**20 // 960_000))
    flood_files = _make_files(WORK / "served", "flood", FLOOD, seconds=60)
    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=_serve, args=(WORK / "served", PACE_BYTES_PER_SECOND, send), daemon=True)
    server.start()
    base = receive.recv()
    sampler = RssSampler()
    sampler.trees[server.pid] = "http server"
    sampler.alone[os.getpid()] = "bench (sequential requests)"
    sampler.start()

    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone
    from django_q.models import OrmQ

    from ingest import services
    from ingest.models import Download, IngestSource
    from station import launcher, queues
    from station.models import Studio

    call_command("migrate", verbosity=0)
    studio = Studio.objects.create(name="Bench", slug="bench")
    figures = {"files_per_set": FILES, "pace_per_connection_mb_s": PACE_BYTES_PER_SECOND / 2**20, "concurrency": WORKERS}
    clusters = {}
    try:
        for queue in (queues.INGEST, queues.PLAYOUT):
            child = launcher.queue_cluster(queue)
            clusters[queue] = subprocess.Popen(child.argv, cwd=ROOT, env={**os.environ, **child.env})
            sampler.trees[clusters[queue].pid] = f"{queue} cluster"
            wait_until(lambda queue=queue: _probe(queue, 1000) is not None, 60, f"the {queue} cluster")

        # Warm-up: each worker's first job imports what downloads need; a running station's workers are warm.
        _pool_seconds(studio, "warm-up", [f"{base}/{path.name}" for path in flood_files[-2 * WORKERS:]])

        # --- throughput: curl, then the pool, per file size; sequential requests on a sample -------------
        for label, files in sets.items():
            urls = [f"{base}/{path.name}" for path in files]
            megabytes = sum(path.stat().st_size for path in files) / 2**20
            curl_s = _curl_parallel(urls, WORK / f"curl-{label}", sampler)
            with sampler.phase(label):
                ours_s, outcome = _pool_seconds(studio, label, urls)
            figures[label] = {
                "file_mb": round(megabytes / len(files), 2),
                "curl_parallel_mb_s": round(megabytes / curl_s, 2),
                "ours_to_ready_mb_s": round(megabytes / ours_s, 2),
                "ours_files_per_s": round(len(files) / ours_s, 1),
                "ratio_to_curl": round(curl_s / ours_s, 3),
                "ours_ready": outcome["completed"],
                "ours_failures": outcome["failures"],
            }
        # --- large files: the ingest cluster's memory while 8 workers each fetch 100 MB ----------------------
        with sampler.phase("files_100mb"):
            large_s, large_outcome = _pool_seconds(studio, "files_100mb", [f"{base}/{path.name}" for path in large_files])
        figures["files_100mb"] = {
            "file_mb": round(large_files[0].stat().st_size / 2**20, 1),
            "ours_to_ready_mb_s": round(sum(path.stat().st_size for path in large_files) / 2**20 / large_s, 2),
            "ours_ready": large_outcome["completed"],
            "ours_failures": large_outcome["failures"],
        }
        shutil.rmtree(Path(os.environ["MEDIA_ROOT"]) / "library", ignore_errors=True)  # 800 MB the rest does not need

        sample = sets[GOAL_SET][:SEQUENTIAL_SAMPLE]
        sequential_s = _sequential_requests([f"{base}/{path.name}" for path in sample], WORK / "sequential")
        sequential_mb_s = sum(path.stat().st_size for path in sample) / 2**20 / sequential_s
        figures["sequential_requests_mb_s"] = round(sequential_mb_s, 2)
        figures["ratio_to_sequential_requests"] = round(figures[GOAL_SET]["ours_to_ready_mb_s"] / sequential_mb_s, 2)

        # --- flood: 500 ingest jobs queued, playout probes meanwhile ------------------------------------
        flood = IngestSource.objects.create(studio=studio, name="Flood", kind="url_list",
                                            url_list="\n".join(f"{base}/{path.name}" for path in flood_files))
        services.sources_poll_due(now=timezone.now())
        queued_at_start = OrmQ.objects.filter(key=queues.INGEST).count()
        waits = []
        for _ in range(PROBES):
            waits.append(_probe(queues.PLAYOUT, 5000))
            time.sleep(0.05)
        queued_at_end = OrmQ.objects.filter(key=queues.INGEST).count()
        shared_queue_wait = _probe(queues.INGEST, 240_000)
        wait_until(lambda: not Download.objects.filter(source=flood, status__in=["queued", "downloading"]).exists(),
                   120, "the flood to drain")
    finally:
        for process in clusters.values():
            process.terminate()
        for process in clusters.values():
            process.wait()
        sampler.running = False
        server.terminate()
        shutil.rmtree(WORK, ignore_errors=True)  # a few GB of test media

    missing = sum(wait is None for wait in waits)
    waits_ms = [wait * 1000 for wait in waits if wait is not None]
    figures.update({
        "flood_jobs_queued_at_start": queued_at_start,
        "flood_jobs_queued_at_end": queued_at_end,
        "playout_probes": len(waits),
        "playout_probes_not_run_in_5s": missing,
        "playout_wait_ms_p50": round(statistics.median(waits_ms), 1),
        "playout_wait_ms_p99": round(percentile(waits_ms, 0.99), 1),
        "playout_wait_ms_max": round(max(waits_ms), 1),
        "shared_queue_wait_ms": round(shared_queue_wait * 1000, 1) if shared_queue_wait is not None else None,
        **sampler.figures(),
    })
    small, large = sampler.phase_figures(GOAL_SET)["peak_pss_mb"], sampler.phase_figures("files_100mb")["peak_pss_mb"]
    tree, worker = f"{queues.INGEST} cluster", f"{queues.INGEST} cluster, largest process"
    figures["ingest_memory"] = {
        "tree_pss_mb_on_4mb_files": small[tree], "tree_pss_mb_on_100mb_files": large[tree],
        "largest_process_pss_mb_on_4mb_files": small[worker], "largest_process_pss_mb_on_100mb_files": large[worker],
        "largest_process_growth_mb": round(large[worker] - small[worker], 1),
    }
    goal = {"ratio_to_curl": 0.8, "ratio_measured_on": GOAL_SET, "playout_wait_ms_p99": 300,
            "ingest_tree_pss_mb_on_100mb_files": f"< {TREE_PSS_CEILING_MB}",
            "largest_process_growth_mb": f"<= {GROWTH_ALLOWED_MB}"}
    met = (figures[GOAL_SET]["ratio_to_curl"] >= 0.8 and figures[GOAL_SET]["ours_ready"] == FILES
           and figures["playout_wait_ms_p99"] <= 300 and missing == 0 and queued_at_end > 0
           and figures["files_100mb"]["ours_ready"] == LARGE_FILES
           and large[tree] < TREE_PSS_CEILING_MB
           and figures["ingest_memory"]["largest_process_growth_mb"] <= GROWTH_ALLOWED_MB)
    print(json.dumps({"bench": "ingest_throughput", "figures": figures, "goal": goal, "met": met}))


if __name__ == "__main__":
    main()
