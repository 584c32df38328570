"""The default channel layer: channels-postgres, with what a station on air day and night needs.

``PostgresLayer`` is channels-postgres (NOTIFY carries each message; its tables hold them briefly),
changed in three ways:
- it connects with the station's own database settings (the embedded server, a test database);
  it is called on the process's layer loop only (station.layer_loop), where its pool lives;
- its listener LISTENs before it re-reads what is pending, and reconnects after a lost connection,
  re-reading what arrived meanwhile; a duplicate is harmless (dashboards skip sequence numbers
  they have sent);
- group membership is a lease (GROUP_LEASE_SECONDS), renewed by the live holder, so a process that
  died stops receiving copies; ``prune`` clears expired messages and memberships each hour.
"""

import asyncio
import base64
import logging
import weakref

import psycopg
from channels_postgres import db
from channels_postgres.core import PostgresChannelLayer
from channels_postgres.models import GroupChannel, Message
from django.db import connections
from django.utils import timezone

logger = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0
GROUP_LEASE_SECONDS = 3600
LISTENER_NAME = "stationkeeper channel layer"  # pg_stat_activity's application_name for the listening connection
_GROUP_SEND = psycopg.sql.SQL(
    "INSERT INTO {message} (channel, message, expire)"
    " SELECT DISTINCT channel, %s, now() + make_interval(secs => %s) FROM {group} WHERE group_key = %s"
).format(message=psycopg.sql.Identifier(Message._meta.db_table), group=psycopg.sql.Identifier(GroupChannel._meta.db_table))
_PENDING_FOR = psycopg.sql.SQL(
    "SELECT id::text, channel, message, extract(epoch from expire)::text FROM {message}"
    " WHERE channel = ANY(%s) AND expire > now() ORDER BY id"
).format(message=psycopg.sql.Identifier(Message._meta.db_table))


class PostgresLayer(PostgresChannelLayer):
    """channels-postgres on the station's database, with the listener and leases described above."""

    # Every layer of the process, so all can be closed (``close_all``) even when channels' registry has let go of
    # one (a settings change resets it) while its listener still runs.
    _instances: "weakref.WeakSet[PostgresLayer]" = weakref.WeakSet()

    def __init__(self, *, using: str = "default", expiry: int = 60, group_expiry: int = GROUP_LEASE_SECONDS, **options):
        settings_dict = {**connections[using].settings_dict}
        settings_dict["OPTIONS"] = {**settings_dict.get("OPTIONS", {})}
        settings_dict["OPTIONS"].pop("pool", None)  # the layer keeps its own small pool
        settings_dict["PSYCOPG_OPTIONS"] = {"min_size": 1, "max_size": 4}
        super().__init__(expiry=expiry, group_expiry=group_expiry, **settings_dict, **options)
        self.django_db.using = using
        self._listener: asyncio.Task | None = None
        self._listener_ready: asyncio.Event | None = None
        PostgresLayer._instances.add(self)

    async def new_channel(self, prefix: str = "specific") -> str:
        """A channel of this process, heard from the moment it is returned (so none of its messages is missed)."""
        channel = await super().new_channel(prefix)
        await self._get_or_create_channel_advisory_lock(channel)
        if self._listener is None or self._listener.done():
            self._listener_ready = asyncio.Event()
            self._listener = asyncio.get_running_loop().create_task(self.listen_to_all_channels())
        await self._listener_ready.wait()
        return channel

    async def group_send(self, group: str, message: dict) -> None:
        """One statement: a copy for each member channel; a group nobody has joined (no dashboard open) gets none."""
        assert self.require_valid_group_name(group)
        pool = await self.django_db.get_db_pool(self.db_params)
        async with pool.connection() as connection:
            await connection.execute(_GROUP_SEND, [self.serialize(message), self.expiry, self._group_key(group)])

    async def close(self) -> None:
        """Stop listening and close the pool (a test database can then be dropped; an exiting process needs not)."""
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.wait([self._listener])
        if db.connection_pool is not None:  # channels-postgres keeps one pool per process, in its module
            await db.connection_pool.close()
            db.connection_pool = None

    @classmethod
    async def close_all(cls) -> None:
        """Close every layer of the process (a test database can then be dropped); on the layer loop."""
        for layer in list(cls._instances):
            await layer.close()

    async def receive(self, channel: str) -> dict:
        """The channel's next message; ``channel`` comes from ``new_channel``."""
        return await self._get_message_from_channel(channel, self._get_or_create_queue(channel))

    async def listen_to_all_channels(self) -> None:
        conninfo = psycopg.conninfo.make_conninfo(conninfo="", **self.db_params)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo=conninfo, autocommit=True,
                                                                 application_name=LISTENER_NAME) as listener:
                    await listener.execute("LISTEN channels_postgres_messages")
                    await self._queue_pending(listener)  # sent while nobody listened: before start, or while away
                    self._listener_ready.set()
                    async for notification in listener.notifies():
                        channel = notification.payload.split(":", 2)[1]
                        if self._channel_advisory_locks.get(channel):  # ours; other processes read theirs
                            self._get_or_create_queue(channel).put_nowait(notification.payload)
            except (psycopg.Error, OSError) as error:
                logger.warning("channel layer listener: %s; reconnecting", error)
                await asyncio.sleep(RECONNECT_SECONDS)

    async def _queue_pending(self, listener: psycopg.AsyncConnection) -> None:
        ours = [channel for channel, locked in self._channel_advisory_locks.items() if locked]
        for message_id, channel, message, expire in await (await listener.execute(_PENDING_FOR, [ours])).fetchall():
            self._get_or_create_queue(channel).put_nowait(
                f"{message_id}:{channel}:{base64.b64encode(message).decode()}:{expire}")


def prune(now=None) -> dict:
    """Forget the layer's expired messages and group memberships (channels-postgres keeps them otherwise)."""
    now = now or timezone.now()
    return {"messages": Message.objects.filter(expire__lt=now).delete()[0],
            "memberships": GroupChannel.objects.filter(expire__lt=now).delete()[0]}
