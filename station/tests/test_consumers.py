"""The studio websocket on both channel layers: auth, scoping, snapshot, sequence, resync."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.utils import timezone
from rest_framework.authtoken.models import Token

from playout import services as playout_services
from playout.models import AsRunEntry
from station.consumers import CLOSE_NOT_A_MEMBER, CLOSE_NOT_AUTHENTICATED
from station.models import StudioEvent
from station.routing import websocket_urlpatterns
from station.settings import channel_layers_for
from station.tests.factories import ChannelFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the relay and the consumer see only committed rows


@pytest.fixture(params=["postgres-relay", "redis"])
def channel_layer(request, settings):
    # Without Redis: PostgreSQL's NOTIFY, relayed in-process; with it, channels-redis.
    settings.CHANNEL_LAYERS = channel_layers_for("redis://127.0.0.1:6379/0" if request.param == "redis" else "")
    channel_layers.backends = {}
    yield request.param
    channel_layers.backends = {}


def _socket(path, user=None):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    if user is not None:
        communicator.scope["user"] = user
    return communicator


def _on_air(channel, title):
    playout_services.channel_on_air(channel_id=channel.pk, at=timezone.now(), title=title, result=AsRunEntry.Result.PLAYED)


@async_to_sync
async def _exchange(path, user, actions):
    """Connect, run ``actions(socket)`` and return what it returns; always disconnect."""
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
        from channels.db import database_sync_to_async

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


def test_a_client_that_reconnects_gets_what_it_missed_or_a_snapshot_if_it_is_too_old(channel_layer, studio_a, operator_a):
    channel = ChannelFactory(studio=studio_a)
    _on_air(channel, "Seen")
    last_seen = StudioEvent.objects.latest("id").pk
    _on_air(channel, "Missed 1")
    _on_air(channel, "Missed 2")

    async def two(socket):
        return [await socket.receive_json_from(timeout=5) for _ in range(2)]

    missed = _exchange(f"/ws/studios/{studio_a.pk}/?since={last_seen}", operator_a, two)
    assert [m["event"]["payload"]["entry"]["title"] for m in missed] == ["Missed 1", "Missed 2"]

    StudioEvent.objects.filter(pk__lte=last_seen + 1).delete()  # pruned past what the client saw

    async def one(socket):
        return await socket.receive_json_from(timeout=5)

    assert _exchange(f"/ws/studios/{studio_a.pk}/?since={last_seen}", operator_a, one)["type"] == "snapshot"
