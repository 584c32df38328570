"""The studio dashboard's websocket: a snapshot on connect, then the studio's events in order.

Messages (documented in docs/asyncapi.yaml):
- ``{"type": "snapshot", "seq": N, "snapshot": {...}}`` — everything the page shows, as of event N;
- ``{"type": "event", "seq": N, "event": {"type": "...", "payload": {...}}}`` — one change;
- ``{"type": "heartbeat", "seq": N}`` — every HEARTBEAT_SECONDS, so both ends notice a dead link.
A client reconnecting with ``?since=N`` gets the events after N (and the RESUME_MARGIN ids before
it, which may have committed late), or a fresh snapshot if the log no longer reaches back that far.
Refusals close the socket with an application code.
"""

import asyncio
from collections import deque
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token

from station import event_relay, events, metrics
from station.dashboard import studio_snapshot
from station.models import Studio

HEARTBEAT_SECONDS = 15
RECENT_EVENTS = 1000
RESUME_MARGIN = 100  # ids; events are row states, so one a client already applied is harmless again
CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_NOT_A_MEMBER = 4403


class StudioConsumer(AsyncJsonWebsocketConsumer):
    channel_layer_alias = None  # events arrive through this process's hub (station.event_relay), not a channel per socket

    async def connect(self):
        await self.accept()  # accepted first, so the browser sees why it is refused
        self.studio_id = int(self.scope["url_route"]["kwargs"]["studio_id"])
        query = parse_qs(self.scope.get("query_string", b"").decode())
        user = await self._user(query.get("token", [None])[0])
        if not user.is_authenticated:
            await self.close(code=CLOSE_NOT_AUTHENTICATED)
            return
        if not await self._is_member(user):
            await self.close(code=CLOSE_NOT_A_MEMBER)
            return
        self.sent_seq = 0
        self.sent, self.sent_order = set(), deque()  # what went out lately (RECENT_EVENTS): an event comes once
        self.covered = set()  # events the snapshot or the catch-up already told
        self.held = []  # events pushed before the snapshot or the catch-up went out
        # Joined before reading, so nothing falls between; what the reading covers is skipped by id.
        before_join = await database_sync_to_async(events.latest_seq)()
        await event_relay.hub().join(self.studio_id, self)
        self.joined = True
        metrics.WEBSOCKET_CLIENTS.inc()
        since = query.get("since", [""])[0]
        # A client that has seen events beyond the latest (a reset database, another station, a made-up
        # number) can't resume: it gets the whole picture, as one with no ``since``.
        resumable = since.isascii() and since.isdigit() and len(since) <= 18 and int(since) <= before_join
        # From a little before the client's last event: one of those may have committed after it.
        missed = await self._events_since(int(since)) if resumable else None
        if missed is None:
            await self._send_snapshot(after=before_join)
        else:
            for event in missed:
                await self._send_event(event)
        while self.held:  # an event pushed while these go out joins the queue, so order holds
            await self._send_event(*self.held.pop(0))
        self.held = None
        self.heartbeat = asyncio.create_task(self._beat())

    async def push(self, event: dict, text: str) -> None:
        """An event for this studio, from the hub."""
        if self.held is not None:
            self.held.append((event, text))
        else:
            await self._send_event(event, text)

    async def disconnect(self, code):
        if hasattr(self, "heartbeat"):
            self.heartbeat.cancel()
        if getattr(self, "joined", False):
            event_relay.hub().leave(self.studio_id, self)
            metrics.WEBSOCKET_CLIENTS.dec()

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "resync":  # a client that lost track asks for the whole picture
            await self._send_snapshot()

    async def _send_event(self, event, text: str | None = None):
        # By id, not by order: ids are taken at insert, so a transaction that commits after a
        # later-numbered one delivers a lower id after a higher one, and it is news all the same.
        seq = event["seq"]
        if seq in self.covered or seq in self.sent:
            self.covered.discard(seq)
            return
        self.sent.add(seq)
        self.sent_order.append(seq)
        if len(self.sent_order) > RECENT_EVENTS:
            self.sent.discard(self.sent_order.popleft())
        self.sent_seq = max(self.sent_seq, seq)
        await self.send(text_data=text or events.event_frame(event))

    async def _send_snapshot(self, *, after: int | None = None):
        seq, covered, snapshot = await self._snapshot(after if after is not None else self.sent_seq)
        self.covered = covered
        self.sent_seq = max(self.sent_seq, seq)
        await self.send_json({"type": "snapshot", "seq": seq, "snapshot": snapshot})

    async def _beat(self):
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self.send_json({"type": "heartbeat", "seq": self.sent_seq})

    @database_sync_to_async
    def _user(self, token: str | None):
        if token:
            found = Token.objects.select_related("user").filter(key=token).first()
            return found.user if found and found.user.is_active else AnonymousUser()
        return self.scope.get("user") or AnonymousUser()

    @database_sync_to_async
    def _is_member(self, user) -> bool:
        return Studio.objects.visible_to(user).filter(pk=self.studio_id).exists()

    @database_sync_to_async
    def _events_since(self, seq: int):
        return events.events_since(self.studio_id, seq, margin=RESUME_MARGIN)

    @database_sync_to_async
    def _snapshot(self, after: int):
        # Which of the studio's events have committed is read first: one that commits meanwhile is
        # sent as well (its payload is a row's state, so telling it twice is harmless), never lost.
        seq = events.latest_seq()
        return seq, set(events.committed_ids(self.studio_id, after=after)), studio_snapshot(self.studio_id)
