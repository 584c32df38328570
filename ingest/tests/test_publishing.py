"""Publishing new assets to an external archive (a real local HTTP endpoint), with retries and a cap."""

import shutil
from datetime import timedelta

import pytest
from django.utils import timezone

from ingest import services
from ingest.models import Download, Publication
from station.errors import UserError
from station.models import Alert
from recorders.models import RecorderSchedule, RecordingSession
from recorders.services import recording_directory, recording_finalize
from station.tests.factories import MediaAssetFactory, ScheduleFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback_allowed")]  # the feed server is local


@pytest.fixture
def archive(ingest_settings, server):
    ingest_settings.PUBLISH_URL = server.url("archive")
    ingest_settings.PUBLISH_BACKOFF_SECONDS = 10
    return server


def _ingest_one(server, tones, url_source):
    url_source(server.add("episode.mp3", tones["two"]))
    services.sources_poll_due(now=timezone.now())
    download = services.download_run(download_id=Download.objects.get().pk)
    return download.asset


def _tick(publication: Publication) -> Publication:
    """Run the publishing step at the publication's next attempt time, as the tick would."""
    services.publications_publish_due(now=publication.next_attempt_at)
    publication.refresh_from_db()
    return publication


def test_a_new_asset_is_published_with_its_metadata_after_retries(archive, tones, url_source):
    archive.archive_fail_times = 2
    asset = _ingest_one(archive, tones, url_source)
    publication = asset.publication

    waits, errors = [], []
    for _attempt in range(2):
        publication = _tick(publication)
        waits.append(publication.next_attempt_at - timezone.now())
        errors.append(publication.last_error)
    publication = _tick(publication)

    assert timedelta(seconds=8) < waits[0] < timedelta(seconds=12)  # backoff 10 s, then doubled
    assert timedelta(seconds=18) < waits[1] < timedelta(seconds=22)
    assert all("answered HTTP 503" in error for error in errors)
    assert publication.status == Publication.Status.PUBLISHED and publication.attempts == 3
    assert publication.last_error == ""
    (received,) = archive.archived
    assert received["metadata"]["title"] == asset.title
    assert received["metadata"]["sha256"] == asset.checksum
    assert received["metadata"]["duration_seconds"] == pytest.approx(2, abs=0.1)
    assert received["size"] == asset.size_bytes
    assert received["key"].endswith(asset.checksum)


def test_publishing_stops_after_the_cap_and_alerts_then_can_be_triggered_again(archive, tones, url_source):
    archive.archive_fail_times = 100
    asset = _ingest_one(archive, tones, url_source)
    publication = asset.publication

    while publication.status == Publication.Status.PENDING:
        publication = _tick(publication)

    assert publication.status == Publication.Status.FAILED
    assert publication.attempts == 8
    assert Alert.objects.get(code="publish_failed").message.startswith(f"{asset.title} was not published after 8 attempts")
    services.publications_publish_due(now=timezone.now() + timedelta(days=1))
    assert Publication.objects.get().attempts == 8  # nothing more happens by itself

    archive.archive_fail_times = 0
    services.publication_queue(asset=asset)
    assert _tick(Publication.objects.get()).status == Publication.Status.PUBLISHED


def test_one_tick_publishes_at_most_the_batch(archive, studio_a, settings):
    for _ in range(30):
        services.publication_queue(asset=MediaAssetFactory(studio=studio_a, file="missing.mp3"))

    services.publications_publish_due(now=timezone.now())

    assert Publication.objects.filter(attempts=1).count() == 25
    assert Publication.objects.filter(attempts=0).count() == 5


def test_publishing_without_an_archive_says_so(ingest_settings, studio_a):
    with pytest.raises(UserError) as raised:
        services.publication_queue(asset=MediaAssetFactory(studio=studio_a))
    assert raised.value.code == "publishing_off"


def test_a_finished_recording_is_published_too(archive, tones):
    start = timezone.now() - timedelta(minutes=2)
    schedule = ScheduleFactory(start_at=start, end_at=start + timedelta(minutes=1), status=RecorderSchedule.Status.STOPPING)
    asset = MediaAssetFactory(studio=schedule.recorder.studio, status="live", duration_seconds=None, origin="recording")
    RecordingSession.objects.create(schedule=schedule, recorder=schedule.recorder, started_at=start, asset=asset)
    directory = recording_directory(schedule)
    directory.mkdir(parents=True)
    shutil.copy(tones["two"], directory / "part-1000-000.mp3")

    recording_finalize(schedule=schedule, stopped_at=timezone.now())

    publication = _tick(Publication.objects.get(asset=asset))
    assert publication.status == Publication.Status.PUBLISHED
    assert archive.archived[0]["metadata"]["origin"] == "recording"
