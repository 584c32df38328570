"""Server-Sent Events of a public channel's now-playing, for the station's websites (``playout.public``).

``GET /public/channels/<slug>/now-playing/events`` answers ``text/event-stream``: the listener document at once,
then the same document at every change of what is on air, each as one ``data:`` line (``id:`` is the event's
number), and a comment every KEEPALIVE_SECONDS so that proxies keep an idle stream open. It is served as ASGI,
outside Django's request cycle: a stream is a coroutine waiting on its socket, fed by the web process's event hub
(``station.event_relay``) with the dashboards, and a document is built once per change, whatever the number of
listeners.
"""

import asyncio
import json
import re
from collections import OrderedDict

from channels.db import database_sync_to_async
from django.utils import timezone
from django.utils.translation import gettext as _

from playout.public import channel_listener_view, listener_view, public_channel
from station.ratelimit import public_limits
from station.event_relay import hub
from station.models import EventType

EVENTS_PATH = re.compile(r"/public/channels/(?P<slug>[-a-zA-Z0-9_]+)/now-playing/events")
KEEPALIVE_SECONDS = 20
RETRY_MILLISECONDS = 3000  # how soon a browser's EventSource reconnects after the stream broke
HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
           (b"access-control-allow-origin", b"*"), (b"x-accel-buffering", b"no")]  # nginx passes each event on at once
_documents: "OrderedDict[tuple[int, int], bytes]" = OrderedDict()  # (event number, channel id) → its message


def _message(document: dict, seq: int | None = None) -> bytes:
    event_id = f"id: {seq}\n" if seq is not None else ""
    return f"{event_id}data: {json.dumps(document)}\n\n".encode()


def _event_message(event: dict, channel) -> bytes:
    """The message for an on-air change, built once per process and channel."""
    key = (event["seq"], channel.pk)
    if key not in _documents:
        payload = event["payload"]
        _documents[key] = _message(listener_view(channel, on_air=payload["entry"], following=payload["next"]),
                                   event["seq"])
        while len(_documents) > 64:
            _documents.popitem(last=False)
    return _documents[key]


class _Listener:
    """One stream, as the hub's dashboards are: it takes its channel's on-air changes, and holds them until its
    first document is sent."""

    def __init__(self, channel, send):
        self.channel, self.send = channel, send
        self.held: list[bytes] | None = []  # None once the stream has begun
        self.gone = False

    async def push(self, event: dict, text: str, frame: bytes) -> None:
        if event["type"] != EventType.ON_AIR or event["payload"]["channel"] != self.channel.pk or self.gone:
            return
        message = _event_message(event, self.channel)
        if self.held is not None:
            self.held.append(message)
            return
        await self.write(message)

    async def push_meter(self, text: str, frame: bytes) -> None:
        """Readings (a live input's level) are the desk's, not the listeners'."""

    async def write(self, body: bytes) -> None:
        try:
            await self.send({"type": "http.response.body", "body": body, "more_body": True})
        except Exception:  # the listener left between two events: its stream ends at its disconnect
            self.gone = True


class NowPlayingEvents:
    async def __call__(self, scope, receive, send, *, slug: str) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, {"detail": _("Now-playing streams are read with GET.")})
            return
        address = (scope.get("client") or ("",))[0]
        limits = public_limits()
        retry_in = limits.allow_request(address)  # opening a stream is a request too
        if retry_in or not limits.open_stream(address):
            await _answer(send, 429, {"detail": _("Too many now-playing streams are open from your address.")},
                          retry_after=int(retry_in) + 1 if retry_in else KEEPALIVE_SECONDS)
            return
        try:
            await self._stream(scope, receive, send, slug)
        finally:
            limits.close_stream(address)

    async def _stream(self, scope, receive, send, slug: str) -> None:
        channel = await database_sync_to_async(public_channel)(slug)
        if channel is None:  # unknown and unpublished channels look alike
            await _answer(send, 404, {"detail": _("No channel publishes its now-playing here.")})
            return
        listener, events = _Listener(channel, send), hub()
        try:
            await events.join(channel.studio_id, listener)  # first: a change while the document is read comes after it
            document = await events.read(("now-playing", channel.pk), lambda: database_sync_to_async(
                channel_listener_view)(channel, now=timezone.now()))
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            if scope["method"] == "HEAD":
                await send({"type": "http.response.body", "body": b""})
                return
            await listener.write(f"retry: {RETRY_MILLISECONDS}\n".encode() + _message(document))
            held, listener.held = listener.held, None
            for message in held:
                await listener.write(message)
            while not listener.gone:
                try:
                    message = await asyncio.wait_for(receive(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await listener.write(b": keepalive\n\n")
                    continue
                if message["type"] == "http.disconnect":
                    break
        finally:
            events.leave(channel.studio_id, listener)


async def _answer(send, status: int, body: dict, *, retry_after: int | None = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"access-control-allow-origin", b"*")]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def with_public_streams(django_application):
    """The HTTP application: the now-playing streams, and Django for everything else."""
    streams = NowPlayingEvents()

    async def application(scope, receive, send):
        match = EVENTS_PATH.fullmatch(scope["path"])
        if match:
            await streams(scope, receive, send, slug=match["slug"])
        else:
            await django_application(scope, receive, send)

    return application
