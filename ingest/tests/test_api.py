"""Media, ingest sources and downloads over REST: upload, download, poll, retry, permissions."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from ingest.models import Download, IngestSource, MediaAsset
from station.tests import factories
from station.tests.api_support import Resource, assert_list_queries_flat, assert_permission_matrix


def source(studio, **fields):
    return IngestSource.objects.create(studio=studio, name=fields.pop("name", f"Feed {IngestSource.objects.count()}"),
                                       kind=IngestSource.Kind.URL_LIST, url_list="https://example.org/a.mp3", **fields)


def failed_download(studio):
    return Download.objects.create(source=source(studio), item_key=f"item-{Download.objects.count()}",
                                   url="https://example.org/a.mp3", status=Download.Status.FAILED, error_message="404")


@pytest.mark.parametrize("resource", [
    Resource("media", make=lambda studio: factories.MediaAssetFactory(studio=studio), write=("patch", "", {"title": "New"})),
    Resource("ingest-sources", make=source, write=("patch", "", {"enabled": False})),
    Resource("ingest-sources", make=source, write=("post", "poll/", {}),
             write_status={"anonymous": 401, "operator_a": 202, "viewer_a": 403, "operator_b": 404, "superuser": 202}),
    Resource("downloads", make=failed_download, write=("post", "retry/", {}),
             write_status={"anonymous": 401, "operator_a": 202, "viewer_a": 403, "operator_b": 404, "superuser": 202}),
], ids=lambda resource: f"{resource.path}-{resource.write[0]}")
def test_permission_matrix(api, role_users, studio_a, studio_b, resource):
    assert_permission_matrix(resource, role_users, studio_a)


def test_upload_probes_the_file_into_a_ready_asset_and_download_returns_it(api, operator_a, viewer_a, operator_b,
                                                                           studio_a, tones, media_root):
    data = tones["two"].read_bytes()
    response = api(operator_a).post("/api/v1/media/", {"studio": studio_a.pk, "title": "Two seconds",
                                                       "file": SimpleUploadedFile("tone.mp3", data)}, format="multipart")
    assert response.status_code == 201, response.content
    asset = response.json()
    assert (asset["status"], asset["origin"], asset["title"], asset["size_bytes"]) == ("ready", "upload", "Two seconds",
                                                                                       len(data))
    assert abs(asset["duration_seconds"] - 2) < 0.1 and "mp3" in asset["format_name"]
    stored = MediaAsset.objects.get(pk=asset["id"]).file.name
    assert stored.startswith(f"library/uploads/studio-{studio_a.pk}/") and stored.endswith(".mp3")  # ids never change

    download = api(viewer_a).get(f"/api/v1/media/{asset['id']}/download/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == data
    assert download["Content-Disposition"].startswith("attachment")
    assert api(operator_b).get(f"/api/v1/media/{asset['id']}/download/").status_code == 404
    assert api(None).get(f"/api/v1/media/{asset['id']}/download/").status_code == 401


def test_an_upload_that_is_not_media_is_refused_and_not_kept(api, operator_a, studio_a, tones, media_root):
    response = api(operator_a).post("/api/v1/media/", {"studio": studio_a.pk, "file": SimpleUploadedFile(
        "song.mp3", tones["fake"].read_bytes())}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_media"
    assert not MediaAsset.objects.exists()
    assert not list(Path(media_root).rglob("*.mp3"))


def test_an_upload_needs_a_file_and_a_studio_the_user_operates(api, operator_a, viewer_a, studio_b, media_root):
    missing = api(operator_a).post("/api/v1/media/", {"studio": studio_b.pk}, format="multipart").json()["error"]
    assert set(missing["fields"]) == {"studio", "file"}
    assert api(viewer_a).post("/api/v1/media/", {}, format="multipart").status_code == 403


def test_only_the_title_and_the_quiet_mark_of_media_are_writable(api, operator_a, studio_a):
    asset = factories.MediaAssetFactory(studio=studio_a, duration_seconds=30)
    body = api(operator_a).patch(f"/api/v1/media/{asset.pk}/", {"title": "Renamed", "duration_seconds": 1,
                                                                  "status": "error", "intentionally_quiet": True},
                                 format="json").json()
    assert (body["title"], body["duration_seconds"], body["status"]) == ("Renamed", 30.0, "ready")
    assert body["intentionally_quiet"] is True


def test_download_of_media_without_a_file_is_404(api, operator_a, studio_a, media_root):
    asset = factories.MediaAssetFactory(studio=studio_a)
    response = api(operator_a).get(f"/api/v1/media/{asset.pk}/download/")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


def test_poll_makes_the_source_due_and_queues_a_poller(api, operator_a, studio_a, django_capture_on_commit_callbacks):
    feed = source(studio_a, name="Podcast")
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = api(operator_a).post(f"/api/v1/ingest-sources/{feed.pk}/poll/")
    assert response.status_code == 202
    assert len(queued) == 1
    feed.refresh_from_db()
    assert feed.next_poll_at <= timezone.now()


def test_polling_a_disabled_source_is_a_conflict(api, operator_a, studio_a):
    feed = source(studio_a, enabled=False)
    response = api(operator_a).post(f"/api/v1/ingest-sources/{feed.pk}/poll/")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "source_disabled")


def test_a_feed_needs_its_url(api, operator_a, studio_a):
    response = api(operator_a).post("/api/v1/ingest-sources/", {"studio": studio_a.pk, "name": "Pod", "kind": "feed"},
                                    format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "feed_without_url")


def test_retrying_a_queued_download_is_a_conflict(api, operator_a, studio_a):
    download = failed_download(studio_a)
    Download.objects.filter(pk=download.pk).update(status=Download.Status.QUEUED)
    response = api(operator_a).post(f"/api/v1/downloads/{download.pk}/retry/")
    assert response.status_code == 409


@pytest.mark.parametrize("path", ["media", "ingest-sources", "downloads"])
def test_list_queries_do_not_grow_with_rows(api, operator_a, studio_a, path):
    feed = source(studio_a)
    makers = {
        "media": lambda: factories.MediaAssetFactory(studio=studio_a),
        "ingest-sources": lambda: source(studio_a),
        "downloads": lambda: Download.objects.create(source=feed, item_key=f"k{Download.objects.count()}",
                                                     url="https://example.org/a.mp3", bytes_done=5, bytes_total=10),
    }
    assert_list_queries_flat(api(operator_a), f"/api/v1/{path}/", lambda count: [makers[path]() for _ in range(count)])
