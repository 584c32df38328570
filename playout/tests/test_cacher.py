"""The cacher puts the coming media on the node, verified, from shared storage or the station's endpoint."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from ingest.media import generate_tone
from ingest.models import MediaAsset
from ingest.services import asset_register_file
from playout.cacher import MediaCache, media_token, node_media_url
from playout.models import ScheduledItem
from recorders.tests.stream_server import closed_port
from station.models import Alert
from station.tests.factories import ChannelFactory, NodeFactory, ShowInstanceFactory, StudioFactory
from station.tests.processes import wait_until

pytestmark = [pytest.mark.django_db(transaction=True),  # the live server reads what the test writes
              pytest.mark.usefixtures("loopback_allowed")]  # and the webstreams are local


@pytest.fixture
def library(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    studio = StudioFactory()

    def tone(frequency: int):
        path = generate_tone(settings.MEDIA_ROOT / "library" / f"tone-{frequency}.mp3", frequency=frequency, seconds=1)
        return asset_register_file(studio=studio, path=path, title=f"Tone {frequency}")

    return studio, tone


def _settled(cache: MediaCache, asset) -> Path | str:
    return wait_until(lambda: cache.path_for(asset.pk) or cache.problem(asset.pk), timeout=10,
                      message=f"the cacher to settle {asset}")


def _item_two_hours_ahead(studio, asset) -> ScheduledItem:
    start = timezone.now() + timedelta(hours=2)
    instance = ShowInstanceFactory(show__channel=ChannelFactory(studio=studio), start_at=start,
                                   end_at=start + timedelta(minutes=1))
    return ScheduledItem.objects.select_related("asset", "channel").get(pk=ScheduledItem.objects.create(
        instance=instance, channel=instance.channel, asset=asset, title=asset.title, start_at=start,
        end_at=start + timedelta(seconds=1)).pk)


def test_a_node_without_the_shared_storage_fetches_a_verified_copy_from_the_station(library, live_server, tmp_path):
    studio, tone = library
    asset = tone(440)
    cache = MediaCache(directory=tmp_path / "node-cache", shared_root=None, station_url=live_server.url,
                       node=NodeFactory())

    cache.want([(0.0, asset)])

    copy = _settled(cache, asset)
    assert copy == tmp_path / "node-cache" / f"{asset.checksum}.mp3"
    assert copy.read_bytes() == asset.file.open("rb").read()
    assert list((tmp_path / "node-cache").iterdir()) == [copy]  # nothing half-written left beside it


def test_a_copy_that_does_not_match_its_checksum_is_refused_and_alerted_before_air(library, live_server, tmp_path):
    studio, tone = library
    asset = tone(550)
    asset.checksum = "0" * 64  # the library's file no longer matches what was ingested
    asset.save(update_fields=["checksum"])
    item = _item_two_hours_ahead(studio, asset)
    cache = MediaCache(directory=tmp_path / "node-cache", shared_root=None, station_url=live_server.url,
                       node=NodeFactory())

    cache.want([(item.start_at.timestamp(), asset)])

    assert _settled(cache, asset) == "the fetched copy of its file does not match its checksum"
    assert list((tmp_path / "node-cache").iterdir()) == []
    assert cache.unplayable([item]) == {item.pk}
    cache.unplayable([item])  # the agent re-arms often: the desk is told once
    alert = Alert.objects.get(code="media_missing")
    assert "does not match its checksum" in alert.message and "The filler will cover it" in alert.message


def test_shared_storage_is_used_in_place_once_its_checksum_matches(library, settings, tmp_path):
    studio, tone = library
    good, damaged = tone(660), tone(770)
    (settings.MEDIA_ROOT / damaged.file.name).write_bytes(b"not what was ingested")
    cache = MediaCache(directory=tmp_path / "node-cache", shared_root=settings.MEDIA_ROOT,
                       station_url=f"http://127.0.0.1:{closed_port()}", node=NodeFactory())

    cache.want([(0.0, good), (1.0, damaged)])

    assert _settled(cache, good) == settings.MEDIA_ROOT / good.file.name
    assert "on the shared storage does not match its checksum" in _settled(cache, damaged)


def test_media_the_station_cannot_serve_or_a_station_out_of_reach_is_reported_with_its_reason(library, live_server, tmp_path):
    studio, tone = library
    gone = tone(880)
    Path(gone.file.path).unlink()
    reachable = MediaCache(directory=tmp_path / "a", shared_root=None, station_url=live_server.url, node=NodeFactory())
    unreachable = MediaCache(directory=tmp_path / "b", shared_root=None, station_url=f"http://127.0.0.1:{closed_port()}",
                             node=NodeFactory())

    reachable.want([(0.0, gone)])
    unreachable.want([(0.0, gone)])

    assert _settled(reachable, gone) == "the station answered 404 for its file"
    assert "could not be fetched from http://127.0.0.1:" in _settled(unreachable, gone)


def test_the_node_media_endpoint_serves_only_links_signed_with_that_nodes_key(library, client):
    studio, tone = library
    asset = tone(990)
    node, other = NodeFactory(), NodeFactory()

    response = client.get(node_media_url("", asset.pk, node=node))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == asset.file.open("rb").read()

    forged = media_token(asset.pk, node=node)[:-2] + "xx"
    assert client.get(reverse("playout:node-media", args=[node.pk, forged])).status_code == 404
    # another node's key, or the token under another node's id, opens nothing
    assert client.get(reverse("playout:node-media", args=[other.pk, media_token(asset.pk, node=node)])).status_code == 404
    assert client.get(f"/playout/media/{asset.pk}").status_code == 404


def test_an_asset_no_job_has_measured_is_measured_from_its_copy_before_air_and_stored(library, live_server, tmp_path):
    studio, tone = library
    asset = tone(770)
    assert asset.loudness_measured_at is None
    cache = MediaCache(directory=tmp_path / "node-cache", shared_root=None, station_url=live_server.url,
                       node=NodeFactory())

    cache.want([(0.0, asset)])

    _settled(cache, asset)
    measured = wait_until(lambda: cache.loudness.get(asset.pk), timeout=10, message="the copy measured")
    # the figures serve the node first, then reach the database
    wait_until(lambda: MediaAsset.objects.filter(pk=asset.pk, loudness_measured_at__isnull=False).exists(), timeout=10,
               message="the measurement stored")
    asset.refresh_from_db()
    assert asset.loudness_measured_at is not None
    assert (asset.loudness_lufs, asset.true_peak_dbtp) == (measured.integrated_lufs, measured.true_peak_dbtp)
    assert -40 < asset.loudness_lufs < -10  # a real tone's loudness, not a default
