"""Advisory locks: a show's rundown and a channel's timeline, taken in one fixed order; session locks.

The order is rundown, then timeline (Sofie's rule: never take a rundown lock
while holding a playlist lock). Any process or replica that follows it can never
deadlock with another; a caller that asks for them the other way round gets
``LockOrderError`` at once instead of a deadlock in production.

Rundown and timeline locks are PostgreSQL transaction-level advisory locks: each
context manager opens a transaction (or a savepoint in an outer one) and the lock
is held until the outermost transaction ends, so what it protects is committed
before anyone else may take it. ``session_lock`` is held by the database session
instead, for work that must not sit in a transaction (a periodic job's run, a
download, joining a recording's files).
"""

import contextlib
import time
from collections.abc import Iterator

from django.db import DatabaseError, connection, transaction


class LockKind:
    """Lock kinds in the one order they may be taken; the value is the first advisory-lock key."""

    RUNDOWN = 1
    TIMELINE = 2

    NAMES = {RUNDOWN: "rundown", TIMELINE: "timeline"}


class LockOrderError(RuntimeError):
    """A lock was asked for against the fixed order: a programming error, raised before waiting."""


def _locks_held() -> set[tuple[int, int]]:
    """(kind, id) of the ordered advisory locks this database session holds now, as PostgreSQL sees them.

    Asking the server (not a Python-side record) catches a lock still held by an
    outer transaction after the block that took it has exited.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT classid::int, objid::bigint FROM pg_locks WHERE locktype = 'advisory' "
            "AND pid = pg_backend_pid() AND objsubid = 2 AND granted AND classid = ANY(%s)",
            [list(LockKind.NAMES)],
        )
        return {(row[0], row[1]) for row in cursor.fetchall()}


@contextlib.contextmanager
def _advisory_lock(kind: int, object_id: int) -> Iterator[None]:
    key = int(object_id) & 0x7FFFFFFF
    with transaction.atomic():
        held = _locks_held()
        later = sorted(k for k, _id in held if k > kind)
        if later and (kind, key) not in held:  # re-taking a lock this session already has can't deadlock
            raise LockOrderError(
                f"cannot take a {LockKind.NAMES[kind]} lock while holding a {LockKind.NAMES[later[0]]} lock: "
                "take the rundown lock first, then the timeline lock"
            )
        with connection.cursor() as cursor:
            # Two-key form: (kind, id) never collides with another kind's ids.
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [kind, key])
        yield


def rundown_lock(show_id: int):
    """Own a show's rundown (its instances and their items) until the transaction ends."""
    return _advisory_lock(LockKind.RUNDOWN, show_id)


def timeline_lock(channel_id: int):
    """Own a channel's timeline until the transaction ends; take any rundown lock first."""
    return _advisory_lock(LockKind.TIMELINE, channel_id)


RECORDING_LOCK_KIND = 3


@contextlib.contextmanager
def session_lock(*key: int, wait_seconds: float | None = 0) -> Iterator[bool]:
    """Hold a session-level advisory lock (one bigint key, or two ints) across work outside transactions.

    Yields whether this session holds it: ``wait_seconds`` 0 tries once, N retries for N seconds,
    None waits as long as it takes. A lost connection releases it with its session; unlocking
    then has nothing left to do.
    """
    placeholders = ", ".join(["%s"] * len(key))
    with connection.cursor() as cursor:
        if wait_seconds is None:
            cursor.execute(f"SELECT pg_advisory_lock({placeholders})", list(key))
            held = True
        else:
            deadline = time.monotonic() + wait_seconds
            while True:
                cursor.execute(f"SELECT pg_try_advisory_lock({placeholders})", list(key))
                held = cursor.fetchone()[0]
                if held or time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
    try:
        yield held
    finally:
        if held:
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute(f"SELECT pg_advisory_unlock({placeholders})", list(key))


def session_lock_held(key: int) -> bool:
    """Whether this session still holds the one-key lock ``key``: a dropped connection loses it silently."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objsubid = 1 "
            "AND classid = ((%s::bigint >> 32) & 4294967295)::oid AND objid = (%s::bigint & 4294967295)::oid AND granted",
            [key, key],
        )
        return cursor.fetchone()[0] > 0


def recording_lock(schedule_id: int):
    """Own one recording's files while it is finished (agent and tick may both finish it); waits its turn.

    A session lock, so the file work (joining, probing) runs outside any transaction. Outside the
    rundown/timeline order: it is never held while taking those.
    """
    return session_lock(RECORDING_LOCK_KIND, int(schedule_id) & 0x7FFFFFFF, wait_seconds=None)
