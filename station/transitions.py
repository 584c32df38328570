"""Status machines whose transitions happen exactly once, however many replicas race.

A model lists its allowed transitions once, as data (``TRANSITIONS``). Every
change is a compare-and-set UPDATE that only matches rows still in a state the
target may be reached from, so two processes asking for the same change get one
success and one ``TransitionNotAllowed``.
"""

from typing import ClassVar

from django.db import models
from django.utils import timezone

from station.errors import TransitionNotAllowed


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

    def move_to(self, target: str, **fields) -> None:
        """Change status to ``target`` if the row still allows it, else raise TransitionNotAllowed."""
        changes = {"status": target, **fields}
        if any(f.name == "updated_at" for f in self._meta.concrete_fields):
            changes.setdefault("updated_at", timezone.now())
        claimed = type(self)._base_manager.filter(
            pk=self.pk, status__in=self.sources_of(target)
        ).update(**changes)
        if not claimed:
            self.refresh_from_db(fields=["status"])
            raise TransitionNotAllowed(self, self.Status(target).label)
        computed = [name for name, value in changes.items() if hasattr(value, "resolve_expression")]
        for name, value in changes.items():
            if name not in computed:
                setattr(self, name, value)
        if computed:
            self.refresh_from_db(fields=computed)
