"""Each web process's dashboards, fed once per event: the hub between the channel layer and the sockets.

An event reaches a web process once, whatever number of its dashboards watch the studio: the hub
holds one layer channel, added to the group of every studio it has dashboards for, and hands what
arrives there to them. It writes each event's frame, encoded once (as JSON and as a websocket frame,
station.websocket_frames), straight to the sockets: going
through the layer once per socket (a queue, a task wake-up and a copy of the message each) cost
about a second per event at a thousand dashboards. Layer calls run on the process's layer loop
(station.layer_loop); group memberships are renewed while the hub lives, as the layer's leases.

The hub also shares reads among its dashboards (``Hub.read``, ``Hub.ask``): a desk of dashboards
connecting at once (a web restart) needs a studio snapshot, and a query for their access checks,
every READ_SPACING, not one of each per dashboard.
"""

import asyncio
import logging
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable
from typing import Protocol, TypeVar

from channels.layers import get_channel_layer

from station.channel_layer import GROUP_LEASE_SECONDS
from station.layer_loop import on_layer_loop
from station.events import event_frame, studio_group
from station.websocket_frames import text_frame

logger = logging.getLogger(__name__)
RETRY_SECONDS = 1.0
READ_SPACING = 0.1  # seconds between the beginnings of two reads of one key
Result = TypeVar("Result")
Question = TypeVar("Question")


class _UpcomingRead:
    """A read callers join until it begins: the questions it will answer, and its task."""

    def __init__(self):
        self.questions: list = []
        self.task: asyncio.Task | None = None


class Dashboard(Protocol):
    async def push(self, event: dict, text: str, frame: bytes) -> None: ...

    async def push_meter(self, text: str, frame: bytes) -> None: ...


class Hub:
    """The dashboards of one process (one event loop), by studio."""

    def __init__(self):
        self.dashboards: dict[int, set[Dashboard]] = defaultdict(set)
        self.layer_channel: str | None = None
        self.joined_groups: set[int] = set()
        self.tasks: list[asyncio.Task] = []  # held here: the loop keeps only weak references to its tasks
        self.opening = asyncio.Lock()
        self.next_reads: dict[Hashable, _UpcomingRead] = {}  # the reads callers join, one per key
        self.read_lanes: dict[Hashable, asyncio.Task] = {}  # done when the next read of a key may begin

    async def join(self, studio_id: int, dashboard: Dashboard) -> None:
        """Send ``dashboard`` the studio's events published from now on."""
        self.dashboards[studio_id].add(dashboard)
        layer = get_channel_layer()
        async with self.opening:
            if self.layer_channel is None:
                self.layer_channel = await on_layer_loop(layer.new_channel)
                loop = asyncio.get_running_loop()
                self.tasks = [loop.create_task(self._from_layer()), loop.create_task(self._renew_groups())]
        if studio_id not in self.joined_groups:
            await on_layer_loop(layer.group_add, studio_group(studio_id), self.layer_channel)
            self.joined_groups.add(studio_id)

    def leave(self, studio_id: int, dashboard: Dashboard) -> None:
        self.dashboards[studio_id].discard(dashboard)

    async def read(self, key: Hashable, read: Callable[[], Awaitable[Result]]) -> Result:
        """What ``read()`` returns, read after this call began; the dashboards asking for ``key``
        meanwhile share the read.

        A result is never older than the call, so a dashboard that joined before asking gets
        whatever the read misses as an event. Reads of a key begin one after another, READ_SPACING
        apart at least: a desk connecting at once (a web restart) shares a few reads, and a lone
        dashboard, finding no read of its studio under way, waits for none.
        """
        result, _ = await self._join_next_read(key, None, lambda _questions: read())
        return result

    async def ask(self, key: Hashable, question: Question,
                  read: Callable[[list[Question]], Awaitable[list[Result]]]) -> Result:
        """The answer to ``question``, from ``read(questions)`` (an answer per question, in order), read
        as ``Hub.read`` reads: the dashboards asking for ``key`` meanwhile have their questions answered
        by one read (a desk connecting at once: their access checks)."""
        answers, position = await self._join_next_read(key, question, read)
        return answers[position]

    async def _join_next_read(self, key: Hashable, question, read) -> tuple:
        if key not in self.next_reads:
            upcoming = self.next_reads[key] = _UpcomingRead()
            upcoming.task = asyncio.ensure_future(self._read_next(key, upcoming, read))
        upcoming = self.next_reads[key]
        position = len(upcoming.questions)
        upcoming.questions.append(question)
        # a caller that leaves does not cancel the read for the others
        return await asyncio.shield(upcoming.task), position

    async def _read_next(self, key: Hashable, upcoming: "_UpcomingRead", read) -> Result:
        if key in self.read_lanes:
            await asyncio.wait([self.read_lanes[key]])
        del self.next_reads[key]  # from here on, callers wait for the read after this one, and its questions are set
        result = asyncio.ensure_future(read(upcoming.questions))
        self.read_lanes[key] = asyncio.ensure_future(self._hold_lane(key, result))
        return await result

    async def _hold_lane(self, key: Hashable, result: asyncio.Future) -> None:
        await asyncio.gather(asyncio.wait([result]), asyncio.sleep(READ_SPACING))
        del self.read_lanes[key]  # before this task ends, so the next read, woken by its end, takes the lane

    async def deliver(self, event: dict, text: str | None = None) -> None:
        text = text or event_frame(event)
        frame = text_frame(text)
        for dashboard in list(self.dashboards.get(event["studio"], ())):
            try:
                await dashboard.push(event, text, frame)
            except Exception:  # one broken socket must not keep the event from the others
                logger.exception("event #%s not sent to a dashboard", event["seq"])

    async def deliver_meter(self, studio_id: int, text: str) -> None:
        frame = text_frame(text)
        for dashboard in list(self.dashboards.get(studio_id, ())):
            try:
                await dashboard.push_meter(text, frame)
            except Exception:
                logger.exception("a meter not sent to a dashboard")

    async def _from_layer(self) -> None:
        layer = get_channel_layer()
        while True:
            try:
                message = await on_layer_loop(layer.receive, self.layer_channel)
            except Exception:  # the layer reconnects on its own; dashboards that miss an event resync by seq
                logger.exception("dashboard events: receiving failed; retrying")
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if "event" in message:
                await self.deliver(message["event"], message.get("text"))
            else:  # a reading (events.publish_meter)
                await self.deliver_meter(message["studio"], message["text"])

    async def _renew_groups(self) -> None:
        while True:
            await asyncio.sleep(GROUP_LEASE_SECONDS / 4)
            for studio_id in list(self.joined_groups):
                try:
                    await on_layer_loop(get_channel_layer().group_add, studio_group(studio_id), self.layer_channel)
                except Exception:
                    logger.exception("dashboard events: renewing studio %s's group failed", studio_id)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub (a web process has one loop; tests run several)."""
    loop = asyncio.get_running_loop()
    if loop not in _hubs:
        _hubs[loop] = Hub()
    return _hubs[loop]
