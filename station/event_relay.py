"""Each web process's dashboards, fed once per event: the hub between the event bus and the sockets.

An event reaches a web process once, whatever number of its dashboards watch the studio:
- with a shared channel layer (Redis), the hub holds one layer channel, added to the group of every
  studio it has dashboards for, and hands what arrives there to them;
- without one, the hub LISTENs on PostgreSQL: the ``station_studioevent`` insert trigger NOTIFYs
  ``studio_events`` when its transaction commits; the hub reads the new events and hands them on.
  After a lost connection it reconnects and first reads everything committed meanwhile, so a
  dashboard misses nothing while the process lives.
The hub writes each event's frame, encoded once, straight to the sockets: going through the layer
once per socket (a queue, a task wake-up and a copy of the message each) cost about a second per
event at a thousand dashboards.
"""

import asyncio
import logging
import weakref
from collections import defaultdict
from typing import Protocol

import psycopg
from channels.layers import get_channel_layer
from django.db import connection

from station.events import event_frame, layer_is_shared, studio_group

logger = logging.getLogger(__name__)
RECONNECT_SECONDS = 1.0
_NEWER_EVENTS = "SELECT id, studio_id, type, payload FROM station_studioevent WHERE id > %s ORDER BY id"


class Dashboard(Protocol):
    async def push(self, event: dict, text: str) -> None: ...


class Hub:
    """The dashboards of one process (one event loop), by studio."""

    def __init__(self):
        self.dashboards: dict[int, set[Dashboard]] = defaultdict(set)
        self.feed: asyncio.Task | None = None
        self.layer_channel: str | None = None
        self.joined_groups: set[int] = set()

    async def join(self, studio_id: int, dashboard: Dashboard, *, after: int) -> None:
        """Send ``dashboard`` the studio's events from now on (those after ``after`` if the hub starts now)."""
        self.dashboards[studio_id].add(dashboard)
        if layer_is_shared():
            if self.layer_channel is None:
                self.layer_channel = await get_channel_layer().new_channel()
            if studio_id not in self.joined_groups:
                await get_channel_layer().group_add(studio_group(studio_id), self.layer_channel)
                self.joined_groups.add(studio_id)
        if self.feed is None or self.feed.done():
            loop = asyncio.get_running_loop()
            self.feed = loop.create_task(self._from_layer() if layer_is_shared() else self._from_postgres(after))

    def leave(self, studio_id: int, dashboard: Dashboard) -> None:
        self.dashboards[studio_id].discard(dashboard)

    async def deliver(self, event: dict, text: str | None = None) -> None:
        text = text or event_frame(event)
        for dashboard in list(self.dashboards.get(event["studio"], ())):
            try:
                await dashboard.push(event, text)
            except Exception:  # one broken socket must not keep the event from the others
                logger.exception("event #%s not sent to a dashboard", event["seq"])

    async def _from_layer(self) -> None:
        layer = get_channel_layer()
        while True:
            message = await layer.receive(self.layer_channel)
            await self.deliver(message["event"], message.get("text"))

    async def _from_postgres(self, last_id: int) -> None:
        params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as listener, \
                        await psycopg.AsyncConnection.connect(**params, autocommit=True) as reader:
                    await listener.execute("LISTEN studio_events")
                    last_id = await self._deliver_newer(reader, last_id)  # committed while we were away
                    async for _note in listener.notifies():
                        last_id = await self._deliver_newer(reader, last_id)
            except (psycopg.Error, OSError) as error:
                logger.warning("studio event relay: %s; reconnecting", error)
                await asyncio.sleep(RECONNECT_SECONDS)

    async def _deliver_newer(self, reader: psycopg.AsyncConnection, last_id: int) -> int:
        for event_id, studio_id, event_type, payload in await (await reader.execute(_NEWER_EVENTS, [last_id])).fetchall():
            await self.deliver({"studio": studio_id, "type": event_type, "payload": payload, "seq": event_id})
            last_id = event_id
        return last_id


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub (a web process has one loop; tests run several)."""
    loop = asyncio.get_running_loop()
    if loop not in _hubs:
        _hubs[loop] = Hub()
    return _hubs[loop]
