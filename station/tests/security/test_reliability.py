"""Reliability found in the same hostile run (issue 14): what an operator did that broke others' work.

- Deleting a recording's asset while it recorded answered 204; the window stayed ``stopping``
  forever and the tick failed every pass after, skipping other studios' housekeeping.
- Renaming a studio's slug during a recording failed it and orphaned its audio.
- A websocket resuming with ``?since=`` beyond the latest event got no snapshot, only heartbeats.
- The node media endpoint opened every studio's media for whoever could sign with SECRET_KEY.
"""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from ingest.models import MediaAsset
from playout.cacher import media_token
from recorders import services
from recorders.models import RecorderSchedule, RecordingSession
from recorders.services import tick
from station.models import Alert
from station.routing import websocket_urlpatterns
from station.tests import factories
from station.tests.processes import database_env, spawn_manage, stop, wait_until

Status = RecorderSchedule.Status


def _recording(studio, *, status=Status.RUNNING):
    start = timezone.now() - timedelta(minutes=1)
    schedule = factories.ScheduleFactory(recorder__studio=studio, start_at=start, end_at=start + timedelta(minutes=30),
                                         status=status, claimed_by="agent", lease_expires_at=timezone.now() + timedelta(minutes=1))
    asset = factories.MediaAssetFactory(studio=studio, status=MediaAsset.Status.LIVE, duration_seconds=None)
    RecordingSession.objects.create(schedule=schedule, recorder=schedule.recorder, started_at=start, asset=asset)
    return schedule, asset


@pytest.mark.django_db
def test_an_asset_being_recorded_cannot_be_deleted_and_once_recorded_it_can(api, operator_a, studio_a, client):
    schedule, asset = _recording(studio_a)

    refused = api(operator_a).delete(f"/api/v1/media/{asset.pk}/")
    client.force_login(operator_a)
    client.post(reverse("admin:ingest_mediaasset_delete", args=[asset.pk]), {"post": "yes"})

    assert refused.status_code == 409 and refused.json()["error"]["code"] == "protected"
    assert MediaAsset.objects.filter(pk=asset.pk).exists()
    RecordingSession.objects.filter(schedule=schedule).update(status=RecordingSession.Status.COMPLETED)
    assert api(operator_a).delete(f"/api/v1/media/{asset.pk}/").status_code == 204
    assert RecordingSession.objects.get(schedule=schedule).asset is None


@pytest.mark.django_db
def test_a_window_the_tick_cannot_finish_fails_alone_and_the_others_are_still_handled(settings, tmp_path, studio_a, studio_b):
    settings.MEDIA_ROOT = tmp_path
    broken, asset = _recording(studio_a, status=Status.STOPPING)
    RecordingSession.objects.filter(schedule=broken).update(asset=None)  # as the old SET_NULL left it
    services.recording_directory(broken).mkdir(parents=True)
    (services.recording_directory(broken) / "part-000000000000001-000.mp3").write_bytes(b"\xff\xfb" * 100)
    RecorderSchedule.objects.filter(pk=broken.pk).update(lease_expires_at=timezone.now() - timedelta(minutes=1))
    late = factories.ScheduleFactory(recorder__studio=studio_b, start_at=timezone.now() - timedelta(minutes=5),
                                     end_at=timezone.now() - timedelta(minutes=2))

    services.housekeeping(owner="tick")
    services.housekeeping(owner="tick")  # and again: the broken one does not fail every pass

    broken.refresh_from_db()
    late.refresh_from_db()
    assert broken.status == Status.FAILED and "asset was deleted" in broken.error_message
    assert late.status == Status.MISSED


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_renaming_a_studio_while_it_records_loses_nothing(settings, tmp_path, api, operator_a, studio_a):
    settings.MEDIA_ROOT = tmp_path / "media"
    recorder = factories.RecorderFactory(studio=studio_a, source_url="tone:440", output_format="wav")
    start = timezone.now() + timedelta(seconds=3)
    window = factories.ScheduleFactory(recorder=recorder, start_at=start, end_at=start + timedelta(seconds=4))
    agent = spawn_manage("run_node", "--name", "host-1", env=database_env())
    try:
        wait_until(lambda: RecorderSchedule.objects.get(pk=window.pk).status == Status.RUNNING, timeout=20,
                   message="recording")
        assert api(operator_a).patch(f"/api/v1/studios/{studio_a.pk}/", {"slug": "renamed"}, format="json").status_code == 200
        done = wait_until(lambda: (w := RecorderSchedule.objects.get(pk=window.pk)).status not in
                          RecorderSchedule.ACTIVE_STATUSES and w, timeout=30, message="the window to end")
    finally:
        stop(agent)

    assert done.status == Status.COMPLETED, done.error_message
    asset = done.session.asset
    assert asset.status == MediaAsset.Status.READY and asset.duration_seconds == pytest.approx(4, abs=0.6)
    assert f"recordings/studio-{studio_a.pk}/schedule-{window.pk}/" in asset.file.name


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("since", ["999999999", "9" * 400])
def test_a_dashboard_resuming_beyond_the_latest_event_gets_the_whole_picture(studio_a, operator_a, since):
    alert = Alert.objects.create(studio=studio_a, code="test", message="On the desk")

    @async_to_sync
    async def first_message():
        socket = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/studios/{studio_a.pk}/?since={since}")
        socket.scope["user"] = operator_a
        connected, _ = await socket.connect()
        assert connected
        try:
            return await socket.receive_json_from(timeout=5)
        finally:
            await socket.disconnect()

    message = first_message()
    assert message["type"] == "snapshot"
    assert alert.message in str(message["snapshot"])


@pytest.mark.django_db
def test_node_media_links_open_with_a_nodes_own_key_only(client, api, superuser, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "secret.mp3").write_bytes(b"\xff\xfb another studio's programme")
    asset = factories.MediaAssetFactory(file="secret.mp3", checksum="x")
    node = factories.NodeFactory()
    forged_with_the_secret_key = signing.dumps(asset.pk, salt="playout.node-media")  # what a leaked SECRET_KEY signs

    other = factories.NodeFactory()
    assert client.get(reverse("playout:node-media", args=[node.pk, forged_with_the_secret_key])).status_code == 404
    assert client.get(reverse("playout:node-media", args=[node.pk, media_token(asset.pk, node=other)])).status_code == 404
    assert client.get(reverse("playout:node-media", args=[node.pk, media_token(asset.pk, node=node)])).status_code == 200
    listed = api(superuser).get("/api/v1/nodes/")
    client.force_login(superuser)
    shown = client.get(reverse("admin:station_node_change", args=[node.pk]))
    assert listed.status_code == shown.status_code == 200
    assert node.media_key not in listed.content.decode() + shown.content.decode()  # not even a superuser sees it


@pytest.mark.django_db
def test_one_window_the_tick_trips_over_fails_with_the_reason_and_the_pass_goes_on(monkeypatch, studio_a, studio_b):
    past = timezone.now() - timedelta(minutes=5)
    tripping, other = (factories.ScheduleFactory(recorder__studio=studio, name=name, start_at=past,
                                                 end_at=past + timedelta(minutes=2))
                       for studio, name in ((studio_a, "Tripping"), (studio_b, "Other")))
    explain = tick._why_unclaimed

    def trips_over_one(recorder, online, now):
        if recorder == tripping.recorder:
            raise ValueError("a value no window should hold")
        return explain(recorder, online, now)

    monkeypatch.setattr(tick, "_why_unclaimed", trips_over_one)
    services.housekeeping(owner="tick")

    tripping.refresh_from_db()
    other.refresh_from_db()
    # its time passed unrecorded: missed, with what the tick tripped over as the reason
    assert tripping.status == Status.MISSED and "a value no window should hold" in tripping.error_message
    assert other.status == Status.MISSED
