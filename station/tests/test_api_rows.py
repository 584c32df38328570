"""Lists read from column values (station.api.base.RowReader) answer exactly as DRF's serializers do."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ingest.models import Download, IngestSource
from playout.models import AsRunEntry, Channel, Episode, Podcast, Show, ShowRecording
from playout.presenters import live_credential_issue
from recorders.models import RecorderSchedule, RecordingSession
from station import services
from station.api import base
from station.api.urls import router
from station.demo import seed_demo
from station.tests.api_support import token_client
from station.tests.factories import MediaAssetFactory

READ_FROM_COLUMNS = {"alerts", "recorders", "schedules", "recordings", "shows", "show-recordings", "episodes", "media",
                     "ingest-sources", "as-run"}


@pytest.fixture
def station_rows(db):
    """The demo station, with a row of every other kind and a value in the columns that may be empty."""
    studio = seed_demo()
    channel = Channel.objects.filter(studio=studio).first()
    asset = MediaAssetFactory(studio=studio)
    AsRunEntry.objects.create(channel=channel, title="Tone", asset=asset, started_at=timezone.now() - timedelta(minutes=3),
                              ended_at=timezone.now(), duration_seconds=180)
    AsRunEntry.objects.create(channel=channel, title="Open", started_at=timezone.now())
    services.alert_raise(studio=studio, code="media_missing", message="A file is missing.", subject="tone.mp3")
    source = IngestSource.objects.create(studio=studio, name="Feed", kind="url_list")
    Download.objects.create(source=source, item_key="one", url="http://127.0.0.1:9/one.mp3", asset=asset)
    schedule = RecorderSchedule.objects.filter(recorder__studio=studio).first()
    RecorderSchedule.objects.filter(pk=schedule.pk).update(  # instants with and without microseconds
        skip_dates=[timezone.localdate()], error_message="Late.", start_at=schedule.start_at.replace(microsecond=120),
        end_at=schedule.end_at.replace(microsecond=0))
    RecordingSession.objects.create(schedule=schedule, recorder=schedule.recorder, asset=asset,  # one window recorded
                                    gaps=[["2027-01-01T00:00:05+00:00", "2027-01-01T00:00:07+00:00"]])
    show = Show.objects.filter(channel=channel).first()
    live_credential_issue(show=show, presenter="Ada")
    recording = ShowRecording.objects.create(show=show, channel=channel, slot_start=show.start_at,
                                             slot_end=show.end_at, started_at=show.start_at, asset=asset)
    Episode.objects.create(podcast=Podcast.objects.create(show=show), recording=recording, title="Episode",
                           chapters=[[0.0, "Song"]], published_at=timezone.now())
    return studio


def _lists(client) -> dict:
    listings = {}
    for prefix, viewset, _ in router.registry:
        if hasattr(viewset, "list"):
            response = client.get(f"/api/v1/{prefix}/", {"page_size": 500})
            assert response.status_code == 200, (prefix, response.content[:300])
            listings[prefix] = response.json()
    return listings


def test_every_list_answers_the_same_from_columns_as_from_the_serializer(station_rows, superuser, monkeypatch):
    client = token_client(superuser)
    from_columns = _lists(client)
    monkeypatch.setattr(base.RowReader, "for_serializer", staticmethod(lambda serializer_class: None))
    from_serializers = _lists(client)

    assert from_columns == from_serializers
    instants = [row[name] for row in from_columns["schedules"]["results"] for name in ("start_at", "end_at")]
    assert any(instant.endswith(".000120Z") for instant in instants) and any(instant.endswith(":00Z") for instant in instants)
    assert all(listing["count"] > 0 for listing in from_columns.values()), {p: l["count"] for p, l in from_columns.items()}


def test_plain_serializers_are_read_from_columns_and_the_rest_as_usual():
    readers = {prefix: base.RowReader.for_serializer(viewset.serializer_class) for prefix, viewset, _ in router.registry
               if hasattr(viewset, "list")}

    assert {prefix for prefix, reader in readers.items() if reader is not None} == READ_FROM_COLUMNS
    assert readers["nodes"] is None  # "online" is worked out per row
    assert readers["playlists"] is None  # nested items
    assert readers["channels"] is None  # listener and public addresses are worked out per channel (a station has few)
    assert readers["studios"] is None  # calendar feeds' addresses, per studio
