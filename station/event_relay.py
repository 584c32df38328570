"""Without Redis, each web process hears committed studio events on PostgreSQL and relays them.

The ``station_studioevent`` insert trigger NOTIFYs ``studio_events`` with the event's id when its
transaction commits. One task per web process (started by the first dashboard that connects)
LISTENs, reads each new event and sends it to the studio's group on the in-process channel layer.
After a lost connection it reconnects and first relays everything committed meanwhile, so a
dashboard misses nothing while the process lives.
"""

import asyncio
import logging

import psycopg
from channels.layers import get_channel_layer
from django.db import connection

from station.events import studio_group

logger = logging.getLogger(__name__)
RECONNECT_SECONDS = 1.0
_relays: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}
_NEWER_EVENTS = "SELECT id, studio_id, type, payload FROM station_studioevent WHERE id > %s ORDER BY id"


def ensure_running(*, after: int) -> None:
    """Start this process's relay on the running event loop, once, relaying the events after ``after``."""
    loop = asyncio.get_running_loop()
    task = _relays.get(loop)
    if task is None or task.done():
        _relays[loop] = loop.create_task(_relay(_connection_params(), after))


def _connection_params() -> dict:
    return {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}


async def _relay(params: dict, last_id: int) -> None:
    layer = get_channel_layer()
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as listener, \
                    await psycopg.AsyncConnection.connect(**params, autocommit=True) as reader:
                await listener.execute("LISTEN studio_events")
                last_id = await _send_newer(reader, layer, last_id)  # committed while we were away
                async for _note in listener.notifies():
                    last_id = await _send_newer(reader, layer, last_id)
        except (psycopg.Error, OSError) as error:
            logger.warning("studio event relay: %s; reconnecting", error)
            await asyncio.sleep(RECONNECT_SECONDS)


async def _send_newer(reader: psycopg.AsyncConnection, layer, last_id: int) -> int:
    for event_id, studio_id, event_type, payload in await (await reader.execute(_NEWER_EVENTS, [last_id])).fetchall():
        event = {"studio": studio_id, "type": event_type, "payload": payload, "seq": event_id}
        await layer.group_send(studio_group(studio_id), {"type": "studio.event", "event": event})
        last_id = event_id
    return last_id
