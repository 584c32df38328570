"""Queues per concern: each periodic job on its queue, and an ingest flood never delays playout jobs."""

import statistics
import time

import pytest
from django.utils import timezone
from django_q.models import OrmQ, Schedule
from django_q.tasks import async_task, result

from ingest import services
from ingest.media import generate_tone
from ingest.models import Download, IngestSource
from ingest.tests.media_server import MediaServer
from station import queues
from station.launcher import station_processes
from station.schedules import setup_schedules
from station.tests.processes import database_env, spawn_manage, stop


@pytest.mark.django_db
def test_each_periodic_job_is_declared_and_started_on_its_own_queue():
    setup_schedules()

    declared = dict(Schedule.objects.values_list("name", "cluster"))
    started = {job.task["name"]: job.key for job in OrmQ.objects.all()}
    expected = {"recorders.tick": "playout", "playout.health": "events", "ingest.tick": "ingest", "station.webhooks": "events"}
    assert declared == {**expected, "station.prune_events": "events", "station.prune_channel_layer": "events"}  # hourly
    assert started == expected


@pytest.mark.django_db
def test_a_job_queued_inside_a_transaction_waits_for_its_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as pending:
        queues.enqueue(queues.INGEST, "ingest.tasks.poll", task_name="after-commit")
        assert not OrmQ.objects.exists()
    for callback in pending:
        callback()
    assert OrmQ.objects.get().key == "ingest"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("loopback_allowed")
def test_playout_jobs_start_promptly_while_500_ingest_jobs_are_queued(tmp_path, studio_a, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    server = MediaServer()
    tone = generate_tone(tmp_path / "tone.mp3", frequency=440, seconds=1)
    source = IngestSource.objects.create(studio=studio_a, name="Flood", kind="url_list")
    downloads = Download.objects.bulk_create(
        Download(source=source, item_key=str(n), url=server.add(f"f{n}.mp3", tone)) for n in range(500))
    for download in downloads:
        async_task("ingest.tasks.download", download.pk, cluster=queues.INGEST)
    env = database_env(Q_INGEST_WORKERS=2, Q_PLAYOUT_WORKERS=1, LOG_LEVEL="WARNING")
    clusters = [spawn_manage("qcluster", env={**env, "Q_CLUSTER_NAME": queue}) for queue in (queues.INGEST, queues.PLAYOUT)]
    try:
        # Measure once the playout cluster is up: its start-up is not a queue's latency.
        assert result(async_task("station.queues.waited", time.time(), cluster=queues.PLAYOUT), wait=30_000) is not None
        probes = []
        for _ in range(20):
            probes.append(async_task("station.queues.waited", time.time(), cluster=queues.PLAYOUT))
            time.sleep(0.2)
        waits = [result(task_id, wait=10_000) for task_id in probes]
        still_queued = OrmQ.objects.filter(key=queues.INGEST).count()
    finally:
        stop(*clusters)
        server.close()

    assert None not in waits, "a playout probe never ran"
    assert still_queued > 300  # the flood was really there while the probes ran
    # Behind 500 downloads a starved job would wait for minutes; the figure itself is bench/ingest_throughput.py's.
    assert max(waits) < 5 and statistics.median(waits) < 1, waits
    assert Download.objects.filter(status="completed").exists()  # and the ingest cluster was working through it


@pytest.mark.django_db
def test_a_studio_group_has_queues_of_its_own_and_the_rest_use_the_plain_ones(settings, studio_a, studio_b,
                                                                               django_capture_on_commit_callbacks):
    settings.STUDIO_QUEUES = {"news": ["a"]}
    for studio in (studio_a, studio_b):
        IngestSource.objects.create(studio=studio, name="Bulletins", kind="url_list",
                                    url_list=f"http://127.0.0.1:9/{studio.slug}.mp3")

    with django_capture_on_commit_callbacks(execute=True):
        services.sources_poll_due(now=timezone.now())

    queued = {Download.objects.get(pk=job.task["args"][0]).source.studio.slug: job.key for job in OrmQ.objects.all()}
    assert queued == {"a": "ingest-news", "b": "ingest"}


def test_run_station_starts_one_cluster_per_queue_with_ingest_at_a_lower_priority(settings):
    clusters = {child.env.get("Q_CLUSTER_NAME"): child.argv for child in station_processes(host="127.0.0.1", port=8000, node="n")}

    assert {"playout", "ingest", "events"} <= set(clusters)
    assert clusters["ingest"][:3] == ["nice", "-n", "10"]
    assert clusters["playout"][-1] == "qcluster" and clusters["playout"][0] != "nice"
