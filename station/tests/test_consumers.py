"""The studio websocket on both channel layers: auth, scoping, snapshot, sequence, resync."""

import asyncio
import json
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from playout import services as playout_services
from playout.models import AsRunEntry, ShowInstance
from station import consumers, event_relay, events
from station.channel_layer import LISTENER_NAME, PostgresLayer
from station.consumers import CLOSE_NOT_A_MEMBER, CLOSE_NOT_AUTHENTICATED
from station.layer_loop import on_layer_loop_sync
from station.models import StudioEvent, StudioMembership
from station.routing import websocket_application, websocket_urlpatterns
from station.services import alert_raise
from station.signals import announcer
from station.settings import channel_layers_for
from station.tests.factories import ChannelFactory, RecorderFactory, ScheduleFactory, ShowInstanceFactory, member_of

pytestmark = pytest.mark.django_db(transaction=True)  # the layer and the consumer see only committed rows


@pytest.fixture(params=["postgres", "redis"])
def channel_layer(request, settings):
    # Without Redis: channels-postgres; with it, channels-redis.
    settings.CHANNEL_LAYERS = channel_layers_for("redis://127.0.0.1:6379/0" if request.param == "redis" else "")
    channel_layers.backends = {}
    yield request.param
    layer = channel_layers.backends.get("default")
    if isinstance(layer, PostgresLayer):
        on_layer_loop_sync(layer.close)
    channel_layers.backends = {}


def _socket(path, user=None):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    if user is not None:
        communicator.scope["user"] = user
    return communicator


def _on_air(channel, title):
    playout_services.channel_on_air(
        channel_id=channel.pk, epoch=channel.lease_epoch, at=timezone.now(), title=title, result=AsRunEntry.Result.PLAYED)


def _exchange(path, user, actions):
    """Connect, run ``actions(socket)`` and return what it returns; always disconnect."""
    announcer.wait_idle()  # the timeline of the channels the test made goes out before the snapshot is read
    return _connected(path, user, actions)


@async_to_sync
async def _connected(path, user, actions):
    socket = _socket(path, user)
    connected, _ = await socket.connect()
    assert connected
    try:
        return await actions(socket)
    finally:
        await socket.disconnect()


def test_anonymous_and_other_studios_users_are_closed_with_their_code(channel_layer, studio_a, operator_b):
    async def closed_with(socket):
        return (await socket.receive_output(timeout=5))["code"]

    assert _exchange(f"/ws/studios/{studio_a.pk}/", None, closed_with) == CLOSE_NOT_AUTHENTICATED
    assert _exchange(f"/ws/studios/{studio_a.pk}/", operator_b, closed_with) == CLOSE_NOT_A_MEMBER


def test_a_member_gets_a_snapshot_then_numbered_events(channel_layer, studio_a, operator_a):
    channel = ChannelFactory(studio=studio_a, name="FM One")

    async def follow(socket):
        snapshot = await socket.receive_json_from(timeout=5)
        await database_sync_to_async(_on_air)(channel, "News")
        await database_sync_to_async(_on_air)(channel, "Weather")
        return snapshot, [await socket.receive_json_from(timeout=5) for _ in range(2)]

    snapshot, changes = _exchange(f"/ws/studios/{studio_a.pk}/", operator_a, follow)

    assert snapshot["type"] == "snapshot" and snapshot["snapshot"]["channels"][0]["name"] == "FM One"
    assert [c["event"]["payload"]["entry"]["title"] for c in changes] == ["News", "Weather"]
    assert snapshot["seq"] < changes[0]["seq"] < changes[1]["seq"]


def test_a_wall_display_connects_with_a_token(channel_layer, studio_a, operator_a):
    token = Token.objects.create(user=operator_a)

    async def first(socket):
        return await socket.receive_json_from(timeout=5)

    assert _exchange(f"/ws/studios/{studio_a.pk}/?token={token.key}", None, first)["type"] == "snapshot"
    assert _exchange(f"/ws/studios/{studio_a.pk}/?token=not-a-token", None,
                     lambda socket: socket.receive_output(timeout=5))["code"] == CLOSE_NOT_AUTHENTICATED


@pytest.mark.parametrize("channel_layer", ["postgres"], indirect=True)
def test_a_member_removed_from_the_studio_gets_no_more_of_it_and_is_closed(channel_layer, studio_a, operator_a):
    async def removed_then_resync(socket):
        assert (await socket.receive_json_from(timeout=5))["type"] == "snapshot"
        await database_sync_to_async(StudioMembership.objects.filter(user=operator_a).delete)()
        await socket.send_json_to({"type": "resync"})
        return await socket.receive_output(timeout=5)

    assert _exchange(f"/ws/studios/{studio_a.pk}/", operator_a, removed_then_resync) == {
        "type": "websocket.close", "code": CLOSE_NOT_A_MEMBER}


@pytest.mark.parametrize("channel_layer", ["postgres"], indirect=True)
@pytest.mark.parametrize("change, code", [({"is_superuser": False}, CLOSE_NOT_A_MEMBER),
                                          ({"is_active": False}, CLOSE_NOT_AUTHENTICATED)])
def test_a_superuser_no_longer_one_is_asked_as_they_are_now(channel_layer, studio_a, superuser, change, code):
    async def demoted_then_resync(socket):
        assert (await socket.receive_json_from(timeout=5))["type"] == "snapshot"
        await database_sync_to_async(type(superuser).objects.filter(pk=superuser.pk).update)(**change)
        await socket.send_json_to({"type": "resync"})
        return (await socket.receive_output(timeout=5))["code"]

    assert _exchange(f"/ws/studios/{studio_a.pk}/", superuser, demoted_then_resync) == code


@pytest.mark.parametrize("channel_layer", ["postgres"], indirect=True)
def test_a_wall_display_whose_token_is_revoked_is_closed_at_its_next_access_check(
        channel_layer, studio_a, operator_a, monkeypatch):
    monkeypatch.setattr(consumers, "HEARTBEAT_SECONDS", 0.2)
    monkeypatch.setattr(consumers, "ACCESS_CHECK_SECONDS", 0.5)
    token = Token.objects.create(user=operator_a)

    async def revoked(socket):
        assert (await socket.receive_json_from(timeout=5))["type"] == "snapshot"
        assert (await socket.receive_json_from(timeout=5))["type"] == "heartbeat"
        await database_sync_to_async(Token.objects.filter(pk=token.pk).delete)()
        while (message := await socket.receive_output(timeout=5))["type"] != "websocket.close":
            assert json.loads(message["text"])["type"] == "heartbeat"
        return message["code"]

    assert _exchange(f"/ws/studios/{studio_a.pk}/?token={token.key}", None, revoked) == CLOSE_NOT_AUTHENTICATED


def test_a_client_that_reconnects_gets_what_it_missed_or_a_snapshot_if_it_is_too_old(channel_layer, studio_a, operator_a):
    channel = ChannelFactory(studio=studio_a)
    _on_air(channel, "Seen")
    last_seen = StudioEvent.objects.latest("id").pk
    _on_air(channel, "Missed 1")
    _on_air(channel, "Missed 2")

    async def until_missed_2(socket):
        titles = []
        while not titles or titles[-1] != "Missed 2":
            message = await socket.receive_json_from(timeout=5)
            if message["event"]["type"] == "playout.on_air":
                titles.append(message["event"]["payload"]["entry"]["title"])
        return titles

    # The last seen comes again, as any within RESUME_MARGIN before it may have committed late.
    missed = _exchange(f"/ws/studios/{studio_a.pk}/?since={last_seen}", operator_a, until_missed_2)
    assert missed == ["Seen", "Missed 1", "Missed 2"]

    StudioEvent.objects.filter(pk__lte=last_seen + 1).delete()  # pruned past what the client saw

    async def one(socket):
        return await socket.receive_json_from(timeout=5)

    assert _exchange(f"/ws/studios/{studio_a.pk}/?since={last_seen}", operator_a, one)["type"] == "snapshot"


def test_events_from_jobs_and_agents_reach_the_dashboard_one_after_another(channel_layer, studio_a, operator_a):
    # Jobs and node agents publish from plain threads with no event loop of their own.
    channel = ChannelFactory(studio=studio_a)

    async def three(socket):
        await socket.receive_json_from(timeout=5)  # the snapshot
        await database_sync_to_async(lambda: [_on_air(channel, title) for title in ("One", "Two", "Three")])()
        return [await socket.receive_json_from(timeout=5) for _ in range(3)]

    received = _exchange(f"/ws/studios/{studio_a.pk}/", operator_a, three)
    assert [m["event"]["payload"]["entry"]["title"] for m in received] == ["One", "Two", "Three"]


@pytest.mark.parametrize("channel_layer", ["postgres"], indirect=True)
def test_the_postgres_layer_hears_again_after_its_listening_connection_is_cut(channel_layer, studio_a, operator_a):
    channel = ChannelFactory(studio=studio_a)

    async def across_a_cut(socket):
        await socket.receive_json_from(timeout=5)
        await database_sync_to_async(_on_air)(channel, "Before")
        before = await socket.receive_json_from(timeout=5)

        def cut():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"
                               " AND datname = current_database()", [LISTENER_NAME])
                return cursor.fetchone()

        assert await database_sync_to_async(cut)() == (True,)
        await asyncio.sleep(0.2)  # cut, not yet back: what is sent now is read when it reconnects
        await database_sync_to_async(_on_air)(channel, "After")
        return before, await socket.receive_json_from(timeout=5)

    before, after = _exchange(f"/ws/studios/{studio_a.pk}/", operator_a, across_a_cut)
    assert (before["event"]["payload"]["entry"]["title"], after["event"]["payload"]["entry"]["title"]) == ("Before", "After")


def test_shows_and_recordings_added_moved_or_removed_reach_the_timeline(channel_layer, studio_a, operator_a):
    show = ShowInstanceFactory(show__channel__studio=studio_a, show__name="Morning")
    recorder = RecorderFactory(studio=studio_a, name="Studio mic")

    def edit():
        ScheduleFactory(recorder=recorder, name="Interview")
        moved = show.start_at.replace(microsecond=0) + timedelta(minutes=30)
        instance = ShowInstance.objects.get(pk=show.pk)
        instance.start_at, instance.end_at = moved, moved + timedelta(hours=1)
        instance.save()
        return moved

    async def timelines(socket):
        await socket.receive_json_from(timeout=5)  # the snapshot
        moved = await database_sync_to_async(edit)()
        while True:  # a burst of edits may come as one event or several; the last tells the whole
            message = await socket.receive_json_from(timeout=1)
            assert message["event"]["type"] == "station.timeline"
            bars = {bar["title"]: bar for bar in message["event"]["payload"]["bars"]}
            if "Interview" in bars and datetime.fromisoformat(bars["Morning"]["start_at"]) == moved:
                return bars

    bars = _exchange(f"/ws/studios/{studio_a.pk}/", operator_a, timelines)
    assert bars["Interview"]["lane"] == f"recorder-{recorder.pk}"


def test_an_event_that_commits_after_a_later_numbered_one_still_arrives(channel_layer, studio_a, operator_a):
    # Ids are taken at insert: a slow transaction's event has the lower id but reaches the dashboard last.
    slow_channel, quick_channel = ChannelFactory(studio=studio_a), ChannelFactory(studio=studio_a)
    inserted, may_commit = threading.Event(), threading.Event()

    def slow():
        try:
            with transaction.atomic():
                _on_air(slow_channel, "Slow")
                inserted.set()
                may_commit.wait(5)
        finally:
            connection.close()

    async def interleaved(socket):
        await socket.receive_json_from(timeout=5)  # the snapshot
        writer = threading.Thread(target=slow)
        writer.start()
        await asyncio.to_thread(inserted.wait, 5)
        await database_sync_to_async(_on_air)(quick_channel, "Quick")
        quick = await socket.receive_json_from(timeout=5)
        may_commit.set()
        await asyncio.to_thread(writer.join, 5)
        return quick, await socket.receive_json_from(timeout=5)

    quick, late = _exchange(f"/ws/studios/{studio_a.pk}/", operator_a, interleaved)
    assert [quick["event"]["payload"]["entry"]["title"], late["event"]["payload"]["entry"]["title"]] == ["Quick", "Slow"]
    assert late["seq"] < quick["seq"]


def _raise_alert(studio, message):
    with transaction.atomic():  # the alert and its event commit together
        alert_raise(studio=studio, code="desk", message=message, subject=message)


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0


async def _until(condition, what: str):
    """Wait for ``condition()`` (or the coroutine it returns) to be true, 5 s at most."""
    for _ in range(100):
        met = condition()
        if await met if asyncio.iscoroutine(met) else met:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {what}")


def _joined(studio_id: int, count: int):
    return lambda: len(event_relay.hub().dashboards[studio_id]) == count


@contextmanager
def _table_locked(table: str):
    """Hold ``table`` locked from another connection: a snapshot read stops there, after it took its view of the database."""
    locked, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(5)
    try:
        yield
    finally:
        release.set()
        holder.join(10)


def _alerts(snapshot_message) -> list[str]:
    return [alert["message"] for alert in snapshot_message["snapshot"]["alerts"]]


def test_a_dashboard_connecting_while_a_snapshot_is_read_sees_what_commits_meanwhile_once(channel_layer, studio_a, operator_a):
    # A's snapshot read stops at a locked table; B connects while it is stopped, then an alert commits.
    # Sharing A's read would show B neither the alert (not in that read) nor its event (sent before B joined).
    path = f"/ws/studios/{studio_a.pk}/"
    announcer.wait_idle()

    @async_to_sync
    async def connect_during_a_read():
        live, early, late = _socket(path, operator_a), _socket(path, operator_a), _socket(path, operator_a)
        await live.connect()
        await live.receive_json_from(timeout=5)
        with _table_locked("playout_asrunentry"):
            await early.connect()
            await _until(database_sync_to_async(_waiting_on_a_lock), "a snapshot read stopped at the lock")
            await late.connect()
            await _until(_joined(studio_a.pk, 3), "all joined the hub")
            await database_sync_to_async(_raise_alert)(studio_a, "Meanwhile")
            assert (await live.receive_json_from(timeout=5))["event"]["payload"]["message"] == "Meanwhile"
        early_messages = [await early.receive_json_from(timeout=5) for _ in range(2)]
        late_snapshot = await late.receive_json_from(timeout=5)
        await database_sync_to_async(_raise_alert)(studio_a, "Afterwards")
        after_late_snapshot = await late.receive_json_from(timeout=5)
        for socket in (live, early, late):
            await socket.disconnect()
        return early_messages, late_snapshot, after_late_snapshot

    (early_snapshot, early_event), late_snapshot, after_late_snapshot = connect_during_a_read()
    assert _alerts(early_snapshot) == [] and early_event["event"]["payload"]["message"] == "Meanwhile"
    assert _alerts(late_snapshot) == ["Meanwhile"]
    assert after_late_snapshot["event"]["payload"]["message"] == "Afterwards"  # not "Meanwhile" a second time


def test_dashboards_connecting_together_share_a_snapshot_read_after_them(channel_layer, studio_a, operator_a):
    path = f"/ws/studios/{studio_a.pk}/"
    announcer.wait_idle()

    @async_to_sync
    async def connect_together():
        first, *others = [_socket(path, operator_a) for _ in range(3)]
        with _table_locked("playout_asrunentry"):
            await first.connect()
            await _until(database_sync_to_async(_waiting_on_a_lock), "a snapshot read stopped at the lock")
            for socket in others:
                await socket.connect()
            await _until(_joined(studio_a.pk, 3), "all joined the hub")
            await database_sync_to_async(_raise_alert)(studio_a, "Meanwhile")
        snapshots = [await socket.receive_json_from(timeout=5) for socket in (first, *others)]
        for socket in (first, *others):
            await socket.disconnect()
        return snapshots

    first, *others = connect_together()
    assert _alerts(first) == [] and [_alerts(snapshot) for snapshot in others] == [["Meanwhile"]] * 2
    assert others[0] == others[1]  # one read: the same instant, to the millisecond of its server_time


def test_a_token_opens_the_dashboards_of_its_users_studios_only(channel_layer, studio_a, studio_b, operator_a, superuser):
    inactive = member_of(studio_a, username="left")
    inactive.is_active = False
    inactive.save()
    tokens = {user.username: Token.objects.create(user=user).key for user in (operator_a, inactive, superuser)}

    def first_message(studio_id, username):
        async def first(socket):
            return await socket.receive_output(timeout=5)

        message = _exchange(f"/ws/studios/{studio_id}/?token={tokens[username]}", None, first)
        return message.get("code") or json.loads(message["text"])["type"]

    assert first_message(studio_a.pk, "operator_a") == "snapshot"
    assert first_message(studio_b.pk, "operator_a") == CLOSE_NOT_A_MEMBER
    assert first_message(studio_a.pk, "left") == CLOSE_NOT_AUTHENTICATED
    assert first_message(studio_b.pk, "root") == "snapshot"  # superusers see every studio
    assert first_message(studio_b.pk + 1000, "root") == CLOSE_NOT_A_MEMBER  # but no studio that isn't there


def test_a_client_claiming_events_beyond_the_latest_gets_a_snapshot(channel_layer, studio_a, operator_a):
    _raise_alert(studio_a, "Latest")
    beyond = StudioEvent.objects.latest("id").pk + 1

    async def first(socket):
        return await socket.receive_json_from(timeout=5)

    assert _exchange(f"/ws/studios/{studio_a.pk}/?since={beyond}", operator_a, first)["type"] == "snapshot"


def test_a_browser_session_opens_the_dashboards_of_its_users_studios_only(channel_layer, client, studio_a, studio_b, operator_a):
    client.force_login(operator_a)
    session_cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()

    @async_to_sync
    async def first_message(studio_id, cookie):
        # Through the middleware that tells who connects, as the browser's socket goes (station.routing)
        socket = WebsocketCommunicator(websocket_application, f"/ws/studios/{studio_id}/",
                                       headers=[(b"cookie", cookie)] if cookie else [])
        await socket.connect()
        try:
            message = await socket.receive_output(timeout=5)
        finally:
            await socket.disconnect()
        return message.get("code") or json.loads(message["text"])["type"]

    announcer.wait_idle()
    assert first_message(studio_a.pk, session_cookie) == "snapshot"
    assert first_message(studio_b.pk, session_cookie) == CLOSE_NOT_A_MEMBER
    assert first_message(studio_a.pk, None) == CLOSE_NOT_AUTHENTICATED
    assert first_message(studio_a.pk, f"{settings.SESSION_COOKIE_NAME}=not-a-session".encode()) == CLOSE_NOT_AUTHENTICATED


def test_a_reading_reaches_the_dashboards_of_its_studio_unnumbered_between_events(channel_layer, studio_a, operator_a):
    channel = ChannelFactory(studio=studio_a, name="FM One")
    reading = {"channel": channel.pk, "presenter": "Ada", "level_dbfs": -14.2}

    async def follow(socket):
        await socket.receive_json_from(timeout=5)  # the snapshot
        await database_sync_to_async(events.publish_meter)(studio_id=studio_a.pk, type="playout.live_input",
                                                           payload=reading)
        await database_sync_to_async(_on_air)(channel, "News")
        return [await socket.receive_json_from(timeout=5) for _ in range(2)]

    meter, event = _exchange(f"/ws/studios/{studio_a.pk}/", operator_a, follow)

    assert meter == {"type": "meter", "meter": {"type": "playout.live_input", "payload": reading}}
    assert event["type"] == "event" and event["event"]["payload"]["entry"]["title"] == "News"
