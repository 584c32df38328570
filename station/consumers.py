"""The studio dashboard's websocket: a snapshot on connect, then the studio's events in order.

Messages (documented in docs/asyncapi.yaml):
- ``{"type": "snapshot", "seq": N, "snapshot": {...}}`` — everything the page shows, as of event N;
- ``{"type": "event", "seq": N, "event": {"type": "...", "payload": {...}}}`` — one change;
- ``{"type": "heartbeat", "seq": N}`` — every HEARTBEAT_SECONDS, so both ends notice a dead link;
- ``{"type": "meter", "meter": {"type": "...", "payload": {...}}}`` — a reading (a live input's level), not numbered:
  the next one replaces it, and none is held or replayed.
A client reconnecting with ``?since=N`` gets the events after N (and the RESUME_MARGIN ids before
it, which may have committed late), or a fresh snapshot if the log no longer reaches back that far.
Refusals close the socket with an application code; access is asked again before a resync is answered and every
ACCESS_CHECK_SECONDS, so a member removed or a token revoked stops following the studio.
"""

import asyncio
import json
import logging
import weakref
from collections import deque
from functools import partial
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import connection

from station import event_relay, events, metrics
from station.dashboard import studio_snapshot_frame
from station.selectors import DashboardAccess, DashboardAsker, dashboard_access
from station.websocket_frames import FRAME_KEY, text_frame

logger = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 15
ACCESS_CHECK_SECONDS = 60  # a member removed, a token revoked: their open dashboards close within this
RECENT_EVENTS = 1000
RESUME_MARGIN = 100  # ids; events are row states, so one a client already applied is harmless again
CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_NOT_A_MEMBER = 4403
CLOSE_CODES = {DashboardAccess.NOT_AUTHENTICATED: CLOSE_NOT_AUTHENTICATED, DashboardAccess.NOT_A_MEMBER: CLOSE_NOT_A_MEMBER}


def beside_the_views(read):
    """``read`` as a coroutine function run on a worker thread, not the one Django's views take turns on:
    a desk of dashboards connecting at once neither waits behind the views nor makes them wait."""
    def read_and_let_go(*args, **kwargs):
        try:
            return read(*args, **kwargs)
        finally:
            # Back to the pool: the loop's worker threads come and go, and a connection left in one
            # would stay open after it (channels' test communicator turns close_old_connections off).
            connection.close()

    return sync_to_async(read_and_let_go, thread_sensitive=False)


class StudioConsumer(AsyncJsonWebsocketConsumer):
    channel_layer_alias = None  # events arrive through this process's hub (station.event_relay), not a channel per socket

    async def connect(self):
        await self.accept()  # accepted first, so the browser sees why it is refused
        self.studio_id = int(self.scope["url_route"]["kwargs"]["studio_id"])
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.asker = DashboardAsker(self.scope.get("user"), query.get("token", [None])[0])
        if not await self._still_allowed():
            return
        self.sent_seq = 0
        self.sent, self.sent_order = set(), deque()  # what went out lately (RECENT_EVENTS): an event comes once
        self.covered = frozenset()  # events the snapshot already shows
        self.held = []  # events pushed before the snapshot or the catch-up went out
        # Joined before reading, so nothing falls between: the hub's reads begin after they are asked for.
        await event_relay.hub().join(self.studio_id, self)
        self.joined = True
        metrics.WEBSOCKET_CLIENTS.inc()
        since = query.get("since", [""])[0]
        # From a little before the client's last event: one of those may have committed after it.
        missed = await self._events_since(int(since)) if since.isascii() and since.isdigit() and len(since) <= 18 else None
        if missed is None:
            await self._send_snapshot()
        else:
            for event, text in missed:
                await self._send_event(event, text)
        await self._send_held()
        self.heartbeat = asyncio.create_task(self._beat())
        _keep_checking_access()

    async def push(self, event: dict, text: str, frame: bytes) -> None:
        """An event for this studio, from the hub, with its websocket frame."""
        if self.held is not None:
            self.held.append((event, text))
        else:
            await self._send_event(event, text, frame)

    async def push_meter(self, text: str, frame: bytes) -> None:
        """A reading for this studio, from the hub: sent once the page has its snapshot, else dropped."""
        if self.held is None:
            await self._send_text(text, frame)

    async def disconnect(self, code):
        if hasattr(self, "heartbeat"):
            self.heartbeat.cancel()
        if getattr(self, "joined", False):
            event_relay.hub().leave(self.studio_id, self)
            metrics.WEBSOCKET_CLIENTS.dec()
            if not any(event_relay.hub().dashboards.values()):  # the process's last dashboard: nothing to check
                checker = _access_checkers.pop(asyncio.get_running_loop(), None)
                if checker is not None:
                    checker.cancel()

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "resync":  # a client that lost track asks for the whole picture
            if not await self._still_allowed():
                return
            self.held = []  # what commits while it is read goes out after it, so the page applies it last
            await self._send_snapshot()
            await self._send_held()

    async def _send_event(self, event, text: str | None = None, frame: bytes | None = None):
        # By id, not by order: ids are taken at insert, so a transaction that commits after a
        # later-numbered one delivers a lower id after a higher one, and it is news all the same.
        seq = event["seq"]
        if seq in self.covered or seq in self.sent:
            return
        self.sent.add(seq)
        self.sent_order.append(seq)
        if len(self.sent_order) > RECENT_EVENTS:
            self.sent.discard(self.sent_order.popleft())
        self.sent_seq = max(self.sent_seq, seq)
        await self._send_text(text or events.event_frame(event), frame)

    async def _send_held(self):
        while self.held:  # an event pushed while these go out joins the queue, so order holds
            await self._send_event(*self.held.pop(0))
        self.held = None

    async def _send_snapshot(self):
        # Shared with the studio's other dashboards asking meanwhile, and read after this one joined the hub.
        snapshot = await event_relay.hub().read(
            ("snapshot", self.studio_id),
            partial(beside_the_views(studio_snapshot_frame), self.studio_id, covered_margin=RESUME_MARGIN))
        self.covered = snapshot.covered
        self.sent_seq = max(self.sent_seq, snapshot.seq)
        await self._send_text(snapshot.text)

    async def _events_since(self, seq: int) -> list[tuple[dict, str]] | None:
        return await event_relay.hub().read(("since", self.studio_id, seq),
                                            partial(beside_the_views(_catch_up), self.studio_id, seq))

    async def _beat(self):
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self._send_text(json.dumps({"type": "heartbeat", "seq": self.sent_seq}))

    async def _still_allowed(self) -> bool:
        """Whether the asker may still follow the studio (its membership, its token); if not, the socket closes
        with the reason's code. Asked with the studio's other dashboards asking meanwhile: a desk coming back
        shares a few queries."""
        access = await event_relay.hub().ask(
            ("access", self.studio_id), self.asker,
            lambda askers: beside_the_views(dashboard_access)(studio_id=self.studio_id, askers=askers))
        if access is not DashboardAccess.GRANTED:
            await self.close(code=CLOSE_CODES[access])
        return access is DashboardAccess.GRANTED

    async def _send_text(self, text: str, frame: bytes | None = None) -> None:
        """``text`` to the client, with its websocket frame for a server that writes it (station.websocket_frames):
        an event's, built by the hub for all of this process's dashboards, or one built here."""
        await self.base_send({"type": "websocket.send", "text": text, FRAME_KEY: frame or text_frame(text)})


_access_checkers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task]" = weakref.WeakKeyDictionary()


def _keep_checking_access() -> None:
    """Check again, every ACCESS_CHECK_SECONDS, whether this process's dashboards may still follow their studios."""
    loop = asyncio.get_running_loop()
    if loop not in _access_checkers or _access_checkers[loop].done():
        _access_checkers[loop] = loop.create_task(_check_access_forever())


async def _check_access_forever() -> None:
    while True:
        await asyncio.sleep(ACCESS_CHECK_SECONDS)
        for studio_id, dashboards in list(event_relay.hub().dashboards.items()):
            try:
                await _close_the_refused(studio_id, [d for d in dashboards if isinstance(d, StudioConsumer)])
            except Exception:  # the database is away: they are asked again at the next check
                logger.exception("dashboards of studio %s: their access could not be checked", studio_id)


async def _close_the_refused(studio_id: int, dashboards: list[StudioConsumer]) -> None:
    """One query for a studio's dashboards, however many: they ask as a few users and tokens."""
    askers = list({dashboard.asker for dashboard in dashboards})
    answers = dict(zip(askers, await beside_the_views(dashboard_access)(studio_id=studio_id, askers=askers)))
    for dashboard in dashboards:
        if answers[dashboard.asker] is not DashboardAccess.GRANTED:
            await dashboard.close(code=CLOSE_CODES[answers[dashboard.asker]])


def _catch_up(studio_id: int, seq: int) -> list[tuple[dict, str]] | None:
    """The events a client resuming from ``seq`` missed, each with its frame (encoded once for every client
    resuming from there), or None if the log can't tell."""
    missed = events.events_since(studio_id, seq, margin=RESUME_MARGIN)
    return None if missed is None else [(event, events.event_frame(event)) for event in missed]
