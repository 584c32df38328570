"""Playout over REST: permissions, channel actions, now playing, playlists, the as-run log and its CSV."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from playout.models import AsRunEntry, Channel, PlaylistItem, ScheduledItem
from station.tests import factories
from station.tests.api_support import READ_ONLY, Resource, assert_list_queries_flat, assert_permission_matrix


def as_run(channel, started_at, title="News", seconds=60.0, **fields):
    return AsRunEntry.objects.create(channel=channel, title=title, started_at=started_at,
                                     ended_at=started_at + timedelta(seconds=seconds), duration_seconds=seconds, **fields)


def playlist_item(studio):
    return PlaylistItem.objects.create(playlist=factories.PlaylistFactory(studio=studio),
                                       asset=factories.MediaAssetFactory(studio=studio))


@pytest.mark.parametrize("resource", [
    Resource("channels", make=lambda studio: factories.ChannelFactory(studio=studio), write=("patch", "", {"name": "On air"})),
    Resource("shows", make=lambda studio: factories.ShowFactory(channel__studio=studio), write=("patch", "", {"name": "Late"})),
    Resource("playlists", make=lambda studio: factories.PlaylistFactory(studio=studio), write=("patch", "", {"description": "Hits"})),
    Resource("playlist-items", make=playlist_item, write=("patch", "", {"position": 3})),
    Resource("as-run", make=lambda studio: as_run(factories.ChannelFactory(studio=studio), timezone.now()),
             write=("delete", "", {}), write_status=READ_ONLY),
    Resource("channels", make=lambda studio: factories.ChannelFactory(studio=studio), write=("post", "restart/", {})),
], ids=lambda resource: f"{resource.path}-{resource.write[0]}")
def test_permission_matrix(api, role_users, studio_a, studio_b, resource):
    assert_permission_matrix(resource, role_users, studio_a)


def test_channel_actions_go_through_the_services(api, operator_a, studio_a):
    channel = factories.ChannelFactory(studio=studio_a, name="Main")
    client = api(operator_a)
    restarted = client.post(f"/api/v1/channels/{channel.pk}/restart/").json()
    assert (restarted["status"], restarted["restart_count"]) == ("starting", 1)
    skip = client.post(f"/api/v1/channels/{channel.pk}/skip/")
    assert (skip.status_code, skip.json()["error"]["code"]) == (409, "channel_not_running")
    assert skip.json()["error"]["params"] == {"channel": "Main"}
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.RUNNING)
    assert client.post(f"/api/v1/channels/{channel.pk}/skip/").status_code == 200
    assert Channel.objects.get(pk=channel.pk).skip_requested_at is not None
    assert client.post(f"/api/v1/channels/{channel.pk}/pause/").json()["paused"] is True
    assert client.post(f"/api/v1/channels/{channel.pk}/pause/").json()["error"]["code"] == "already_paused"
    assert client.post(f"/api/v1/channels/{channel.pk}/resume/").json()["paused"] is False
    assert client.post(f"/api/v1/channels/{channel.pk}/resume/").status_code == 409


def test_status_is_not_writable(api, operator_a, studio_a):
    channel = factories.ChannelFactory(studio=studio_a)
    response = api(operator_a).patch(f"/api/v1/channels/{channel.pk}/", {"status": "running", "paused": True}, format="json")
    assert response.status_code == 200
    channel.refresh_from_db()
    assert (channel.status, channel.paused) == ("stopped", False)


def test_output_settings_must_be_an_object(api, operator_a, studio_a):
    channel = factories.ChannelFactory(studio=studio_a)
    response = api(operator_a).patch(f"/api/v1/channels/{channel.pk}/", {"output_settings": ["port", 8100]}, format="json")
    assert (response.status_code, list(response.json()["error"]["fields"])) == (400, ["output_settings"])


def test_now_playing_shows_the_open_row_and_what_comes_next(api, viewer_a, studio_a):
    channel = factories.ChannelFactory(studio=studio_a)
    client = api(viewer_a)
    assert client.get(f"/api/v1/channels/{channel.pk}/now-playing/").json() == {
        "channel": channel.pk, "status": "stopped", "paused": False, "on_air": None, "next": None}
    asset = factories.MediaAssetFactory(studio=studio_a, title="Jingle")
    AsRunEntry.objects.create(channel=channel, title="Jingle", asset=asset, started_at=timezone.now())
    instance = factories.ShowInstanceFactory(show__channel=channel)
    ScheduledItem.objects.create(instance=instance, channel=channel, title="Top of the hour", start_at=instance.start_at,
                                 end_at=instance.start_at + timedelta(minutes=3))
    body = client.get(f"/api/v1/channels/{channel.pk}/now-playing/").json()
    assert (body["on_air"]["title"], body["on_air"]["asset"], body["on_air"]["ended_at"]) == ("Jingle", asset.pk, None)
    assert body["next"]["title"] == "Top of the hour"


def test_playlists_list_their_items_in_play_order(api, operator_a, studio_a):
    playlist = factories.PlaylistFactory(studio=studio_a)
    second = PlaylistItem.objects.create(playlist=playlist, position=2, webstream_url="https://radio.example/live",
                                         webstream_seconds=600)
    first = PlaylistItem.objects.create(playlist=playlist, position=1, cue_in_seconds=5,
                                        asset=factories.MediaAssetFactory(studio=studio_a, duration_seconds=65))
    items = api(operator_a).get(f"/api/v1/playlists/{playlist.pk}/").json()["items"]
    assert [(item["id"], item["play_seconds"]) for item in items] == [(first.pk, 60.0), (second.pk, 600.0)]


def test_playlist_items_refuse_another_studios_media_and_bad_cues(api, operator_a, studio_a, studio_b):
    playlist = factories.PlaylistFactory(studio=studio_a)
    foreign = factories.MediaAssetFactory(studio=studio_b)
    client = api(operator_a)
    response = client.post("/api/v1/playlist-items/", {"playlist": playlist.pk, "asset": foreign.pk}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "does_not_exist")
    ours = factories.MediaAssetFactory(studio=studio_a)
    response = client.post("/api/v1/playlist-items/", {"playlist": playlist.pk, "asset": ours.pk, "cue_in_seconds": 10,
                                                       "cue_out_seconds": 5}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "cue_out_before_cue_in")


def test_media_in_a_playlist_cannot_be_deleted(api, operator_a, studio_a):
    item = playlist_item(studio_a)
    response = api(operator_a).delete(f"/api/v1/media/{item.asset_id}/")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "protected")


def test_as_run_filters_by_channel_and_range(api, viewer_a, studio_a, studio_b):
    main, second = factories.ChannelFactory(studio=studio_a), factories.ChannelFactory(studio=studio_a)
    t0 = datetime(2026, 11, 1, 6, tzinfo=UTC)
    rows = [as_run(main, t0 + timedelta(minutes=m), title=f"Item {m}") for m in range(4)]
    as_run(second, t0)
    as_run(factories.ChannelFactory(studio=studio_b), t0)
    client = api(viewer_a)
    since, until = (t0 + timedelta(minutes=1)).isoformat(), (t0 + timedelta(minutes=3)).isoformat()
    body = client.get("/api/v1/as-run/", {"channel": main.pk, "since": since, "until": until}).json()
    assert [row["id"] for row in body["results"]] == [rows[2].pk, rows[1].pk]  # newest first
    assert client.get("/api/v1/as-run/").json()["count"] == 5


def test_as_run_csv_is_the_whole_filtered_range_oldest_first(api, viewer_a, studio_a, studio_b):
    channel = factories.ChannelFactory(studio=studio_a, slug="main")
    asset = factories.MediaAssetFactory(studio=studio_a, checksum="ab" * 32)
    node = factories.NodeFactory(name="node-1")
    t0 = datetime(2026, 11, 1, 6, tzinfo=UTC)
    as_run(channel, t0 + timedelta(minutes=1), title="Weather", seconds=30.5, result="skipped", presenter="=Ada")
    as_run(channel, t0, title="News, then music", asset=asset, node=node)
    as_run(channel, t0 + timedelta(days=1), title="Tomorrow")
    as_run(factories.ChannelFactory(studio=studio_b), t0, title="Not ours")
    response = api(viewer_a).get("/api/v1/as-run/", {"format": "csv", "page_size": 1, "until": "2026-11-02T00:00:00Z"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="as-run-')
    table = list(csv.reader(io.StringIO(response.content.decode())))
    assert table == [
        ["channel", "started_at_utc", "ended_at_utc", "duration_seconds", "title", "result", "asset_id", "asset_checksum",
         "scheduled_item_id", "node", "presenter"],
        ["main", "2026-11-01T06:00:00+00:00", "2026-11-01T06:01:00+00:00", "60.000", "News, then music", "played",
         str(asset.pk), "ab" * 32, "", "node-1", ""],
        ["main", "2026-11-01T06:01:00+00:00", "2026-11-01T06:01:30.500000+00:00", "30.500", "Weather", "skipped", "", "",
         "", "", "'=Ada"],
    ]


def test_as_run_csv_errors_are_json(api, viewer_a):
    response = api(viewer_a).get("/api/v1/as-run/", {"format": "csv", "since": "last week"})
    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert list(response.json()["error"]["fields"]) == ["since"]


def test_as_run_is_read_only(api, operator_a, studio_a):
    row = as_run(factories.ChannelFactory(studio=studio_a), timezone.now())
    assert api(operator_a).patch(f"/api/v1/as-run/{row.pk}/", {"title": "Rewritten"}, format="json").status_code == 405
    assert api(operator_a).post("/api/v1/as-run/", {}, format="json").json()["error"]["code"] == "method_not_allowed"


def _rows(make):
    return lambda count: [make() for _ in range(count)]


@pytest.mark.parametrize("path", ["channels", "shows", "playlists", "playlist-items", "as-run"])
def test_list_queries_do_not_grow_with_rows(api, operator_a, studio_a, path):
    channel = factories.ChannelFactory(studio=studio_a)
    playlist = factories.PlaylistFactory(studio=studio_a)
    makers = {
        "channels": lambda: factories.ChannelFactory(studio=studio_a),
        "shows": lambda: factories.ShowFactory(channel=channel, playlist=playlist),
        # each playlist with two items, one media and one webstream: items and their media come in one query each
        "playlists": lambda: _playlist_with_items(studio_a),
        "playlist-items": lambda: PlaylistItem.objects.create(playlist=playlist,
                                                              asset=factories.MediaAssetFactory(studio=studio_a)),
        "as-run": lambda: as_run(channel, timezone.now() - timedelta(minutes=AsRunEntry.objects.count() + 1)),
    }
    assert_list_queries_flat(api(operator_a), f"/api/v1/{path}/", _rows(makers[path]))


def _playlist_with_items(studio):
    playlist = factories.PlaylistFactory(studio=studio)
    PlaylistItem.objects.create(playlist=playlist, asset=factories.MediaAssetFactory(studio=studio))
    PlaylistItem.objects.create(playlist=playlist, webstream_url="https://radio.example/live", webstream_seconds=60)
    return playlist
