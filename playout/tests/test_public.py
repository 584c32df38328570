"""A channel's public now-playing: what anyone may read of it, as JSON and as Server-Sent Events (playout.public)."""

import json
import time
from datetime import timedelta

import pytest
import requests
from django.db import transaction
from django.utils import timezone

from playout import services
from playout.models import AsRunEntry, ScheduledItem
from station.events import iso
from station.tests.factories import ChannelFactory, MediaAssetFactory, NodeFactory, ShowInstanceFactory
from station.tests.processes import WebServer, wait_for_other_sessions_to_end

Result = AsRunEntry.Result


def _published(**fields):
    return ChannelFactory(public_now_playing=True, node=NodeFactory(), **fields)


def _on_air(channel, title: str, *, result=Result.FALLBACK, asset=True, ago: float = 60) -> AsRunEntry:
    media = MediaAssetFactory(studio=channel.studio, title=title) if asset else None
    return services.channel_on_air(channel_id=channel.pk, epoch=channel.lease_epoch, title=title, result=result,
                                   at=timezone.now() - timedelta(seconds=ago), asset_id=media.pk if media else None,
                                   node=channel.node)


def _document(client, channel, **headers):
    return client.get(f"/public/channels/{channel.slug}/now-playing", **headers)


@pytest.mark.django_db
def test_a_published_channel_tells_anyone_the_title_on_air_and_the_next_one_and_nothing_more(client):
    channel = _published(name="Radio One", slug="radio-one")
    on_air = _on_air(channel, "Morning mix")
    instance = ShowInstanceFactory(show__channel=channel, start_at=timezone.now() + timedelta(minutes=5))
    ScheduledItem.objects.create(instance=instance, channel=channel, title="News", start_at=instance.start_at,
                                 end_at=instance.start_at + timedelta(minutes=3))

    response = _document(client, channel)

    assert response.json() == {
        "channel": {"name": "Radio One", "slug": "radio-one"},
        "now": {"title": "Morning mix", "started_at": iso(on_air.started_at), "ends_at": None},
        "next": {"title": "News", "start_at": iso(instance.start_at)},
    }
    assert response["Cache-Control"] == "public, max-age=1" and response["Access-Control-Allow-Origin"] == "*"
    assert _document(client, channel, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304  # unchanged
    _on_air(channel, "Midday", ago=1)
    assert _document(client, channel, HTTP_IF_NONE_MATCH=response["ETag"]).json()["now"]["title"] == "Midday"


@pytest.mark.django_db
@pytest.mark.parametrize(("result", "asset"), [(Result.PAUSED, False), (Result.FALLBACK, False), (Result.DEAD_AIR, True)])
def test_a_pause_silence_or_dead_air_shows_nothing_on_air(client, result, asset):
    channel = _published()
    _on_air(channel, "Whatever it is", result=result, asset=asset)
    assert _document(client, channel).json()["now"] is None


@pytest.mark.django_db
def test_a_channel_that_does_not_publish_is_not_found_as_an_unknown_one_is(client):
    hidden = ChannelFactory(slug="internal")
    for slug in (hidden.slug, "no-such-channel"):
        response = client.get(f"/public/channels/{slug}/now-playing")
        assert (response.status_code, response.json()) == (404, {"detail": "No channel publishes its now-playing here."})


@pytest.mark.django_db
def test_an_address_asking_too_often_is_told_when_to_come_back(client, settings):
    settings.PUBLIC_REQUESTS_PER_MINUTE = 3
    channel = _published()
    assert [_document(client, channel).status_code for _ in range(3)] == [200, 200, 200]
    refused = _document(client, channel)
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 61
    assert "try again in" in refused.json()["detail"]
    assert _document(client, channel, REMOTE_ADDR="192.0.2.7").status_code == 200  # another address is not held up


# -- Server-Sent Events, through a real Daphne ---------------------------------------------------------------------

@pytest.fixture
def web():
    server = WebServer()
    server.start(LOG_LEVEL="WARNING", PUBLIC_STREAMS_PER_ADDRESS="2")
    yield server
    server.process.terminate()
    server.process.wait(10)
    wait_for_other_sessions_to_end()


def _events(response):
    """Each ``data:`` document of a stream, as it arrives."""
    for line in response.iter_lines():
        if line.startswith(b"data: "):
            yield json.loads(line[len(b"data: "):])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_website_hears_each_change_on_air_at_once_and_streams_are_limited_per_address(web):
    channel = _published()
    _on_air(channel, "Morning mix")
    url = f"{web.url}/public/channels/{channel.slug}/now-playing/events"
    with requests.get(url, stream=True, timeout=10) as stream, requests.get(url, stream=True, timeout=10) as second:
        assert stream.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert stream.headers["Access-Control-Allow-Origin"] == "*"
        documents = _events(stream)
        assert next(documents)["now"]["title"] == "Morning mix"  # at once, on connecting

        third = requests.get(url, stream=True, timeout=10)
        assert third.status_code == 429 and "Too many" in third.json()["detail"]
        with transaction.atomic():
            _on_air(channel, "News at noon", result=Result.PLAYED, ago=0)
        committed = time.monotonic()
        heard = next(documents)
        assert heard["now"]["title"] == "News at noon" and time.monotonic() - committed < 1
        assert next(_events(second))["now"]["title"] in ("Morning mix", "News at noon")
    hidden = requests.get(f"{web.url}/public/channels/{ChannelFactory().slug}/now-playing/events", timeout=10)
    assert (hidden.status_code, hidden.json()["detail"]) == (404, "No channel publishes its now-playing here.")
