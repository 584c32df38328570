"""Status machines whose transitions happen exactly once, however many replicas race.

A model lists its allowed transitions once, as data (``TRANSITIONS``). Every status write is
``move_to``: a compare-and-set UPDATE that only matches rows still in a state the target may be
reached from (and still matching the caller's guards: an owner, a lease), so two processes
asking for the same change get one success and one ``TransitionNotAllowed`` (or a count of 0).
``station.tests.test_transitions`` keeps every status write in the code going through here.
"""

from typing import ClassVar

from django.db import models
from django.utils import timezone

from station.errors import TransitionNotAllowed


class TransitionQuerySet(models.QuerySet):
    """Rows of a status machine, which move together through its transitions table."""

    def move_to(self, status: str, **fields) -> int:
        """Move the rows still in a state ``status`` may be reached from, setting ``fields`` too; return how many moved."""
        model = self.model
        changes = {"status": status, **fields}
        if _has_updated_at(model):
            changes.setdefault("updated_at", timezone.now())
        return self.filter(status__in=model.sources_of(status)).update(**changes)


class StatusMachine(models.Model):
    """Abstract base for models with a ``status`` field and a transition table."""

    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {}

    class Meta:
        abstract = True

    @classmethod
    def sources_of(cls, target: str) -> list[str]:
        """Return the statuses from which ``target`` may be reached."""
        return [source for source, targets in cls.TRANSITIONS.items() if target in targets]

    def validate_constraints(self, exclude=None):
        # A status always has a value, and constraints conditioned on it (e.g. "no two
        # *active* windows overlap") must see it even when a form shows it read-only.
        super().validate_constraints(exclude=set(exclude or ()) - {"status"})

    def move_to(self, target: str, *, where: dict | None = None, **fields) -> None:
        """Change status to ``target`` if the row still allows it (and matches ``where``), else raise TransitionNotAllowed."""
        changes = {"status": target, **fields}
        if _has_updated_at(type(self)):
            changes.setdefault("updated_at", timezone.now())
        rows = TransitionQuerySet(model=type(self)).filter(pk=self.pk, **(where or {}))
        if not rows.move_to(**changes):
            self.refresh_from_db(fields=["status"])
            raise TransitionNotAllowed(self, self.Status(target).label)
        computed = [name for name, value in changes.items() if hasattr(value, "resolve_expression")]
        for name, value in changes.items():
            if name not in computed:
                setattr(self, name, value)
        if computed:
            self.refresh_from_db(fields=computed)


def _has_updated_at(model) -> bool:
    return any(field.name == "updated_at" for field in model._meta.concrete_fields)
