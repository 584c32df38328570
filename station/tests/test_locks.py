import psycopg
import pytest
from django.db import connection, transaction

from station.locks import LockKind, LockOrderError, rundown_lock, timeline_lock

pytestmark = pytest.mark.django_db


def _taken_elsewhere(kind: int, object_id: int) -> bool:
    """Ask from a second connection whether the advisory lock is free."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as other:
        got = other.execute("SELECT pg_try_advisory_lock(%s, %s)", [kind, object_id]).fetchone()[0]
        if got:
            other.execute("SELECT pg_advisory_unlock(%s, %s)", [kind, object_id])
        return not got


def test_rundown_then_timeline_is_allowed_and_really_locks():
    with rundown_lock(7):
        with timeline_lock(3):
            assert _taken_elsewhere(LockKind.RUNDOWN, 7)
            assert _taken_elsewhere(LockKind.TIMELINE, 3)


def test_timeline_then_rundown_raises_at_once():
    with timeline_lock(3):
        with pytest.raises(LockOrderError, match="take the rundown lock first"):
            with rundown_lock(7):
                pass


def test_reverse_order_is_caught_while_an_outer_transaction_still_holds_the_timeline():
    with transaction.atomic():
        with timeline_lock(1):
            pass  # the block is over, but the lock lasts until the transaction ends
        with pytest.raises(LockOrderError):
            with rundown_lock(1):
                pass


@pytest.mark.django_db(transaction=True)
def test_locks_end_with_their_transaction():
    with timeline_lock(1):
        pass
    with rundown_lock(1), timeline_lock(1):
        assert not _taken_elsewhere(LockKind.RUNDOWN, 2)
