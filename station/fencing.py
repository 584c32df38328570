"""Fencing: an agent whose lease was taken writes nothing more.

Work an agent holds (a recording window, a channel, the node itself) has a lease epoch in its
row, which the database raises whenever the work changes hands (a trigger on the owner column,
or the service that hands it over). The agent keeps the epoch it was given; each of its writes
first locks the row as long as the epoch is still that one (``hold``) and is refused otherwise.
Handing the work over updates the same row, so it waits for a write in flight and every write
after it is refused: an agent that was frozen (SIGSTOP) or cut off from the database past its
lease can't write a status, an as-run row, an asset or a heartbeat once another took over.
"""

from functools import reduce
from operator import or_

from django.db import models, transaction
from django.db.models import Q


class Fenced(Exception):
    """The agent's lease on this work was taken by another: it must stop the work and write nothing more."""

    def __init__(self, model: type[models.Model], pk: int, epoch: int):
        super().__init__(f"{model._meta.label} {pk}: lease epoch {epoch} is no longer current")
        self.model, self.pk, self.epoch = model, pk, epoch


def hold(model: type[models.Model], *, pk: int, epoch: int) -> None:
    """Lock ``model`` row ``pk`` for the rest of the transaction if its epoch is still ``epoch``; raise Fenced if not."""
    if pk not in hold_each(model, {pk: epoch}):
        raise Fenced(model, pk, epoch)


def hold_each(model: type[models.Model], leases: dict[int, int]) -> set[int]:
    """Lock the rows of ``leases`` (pk: epoch) whose epoch is still the one given, in one query; return their pks."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("a hold guards the writes of its transaction: take it inside one")
    if not leases:
        return set()
    current = reduce(or_, (Q(pk=pk, lease_epoch=epoch) for pk, epoch in leases.items()))
    # Only these rows: a model's default ordering may join others (a channel's studio), which FOR UPDATE would lock too.
    held = model._default_manager.filter(current).order_by().select_for_update(no_key=True, of=("self",))
    return set(held.values_list("pk", flat=True))


def epoch_trigger(*, table: str, owner_column: str) -> tuple[str, str]:
    """SQL creating (and dropping) the trigger that raises ``table``'s lease epoch when ``owner_column`` changes.

    An update never lowers the epoch either: a whole-row save of a stale copy can't make an old epoch current again.
    """
    name = f"{table}_lease_epoch"
    create = f"""
        CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.lease_epoch := GREATEST(NEW.lease_epoch, OLD.lease_epoch)
                + CASE WHEN NEW.{owner_column} IS DISTINCT FROM OLD.{owner_column} THEN 1 ELSE 0 END;
            RETURN NEW;
        END $$;
        CREATE TRIGGER {name} BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {name}();
    """
    return create, f"DROP TRIGGER IF EXISTS {name} ON {table}; DROP FUNCTION IF EXISTS {name}();"
