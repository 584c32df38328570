"""Database building blocks shared by the apps."""

from datetime import UTC, datetime

import psycopg
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import BigIntegerRangeField, DateTimeRangeField, RangeOperators
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS
from django.db.models import CheckConstraint, F, Func, Q, Value
from django.utils.timezone import is_aware
from psycopg.adapt import Loader
from psycopg.pq import Format


class TsTzRange(Func):
    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class IdRange(Func):
    """An id as a one-value range, so GiST can compare ids without the btree_gist extension."""

    function = "INT8RANGE"
    output_field = BigIntegerRangeField()

    def __init__(self, field_name: str):
        super().__init__(F(field_name), F(field_name), Value("[]"))


def no_overlap(*, name: str, owner: str, code: str, message, condition: Q | None = None) -> ExclusionConstraint:
    """No two rows with the same ``owner`` may have overlapping [start_at, end_at) windows."""
    return ExclusionConstraint(
        name=name,
        expressions=[
            (IdRange(owner), RangeOperators.OVERLAPS),
            (TsTzRange("start_at", "end_at"), RangeOperators.OVERLAPS),
        ],
        condition=condition,
        violation_error_code=code,
        violation_error_message=message,
    )


_END_AFTER_START = Q(end_at__gt=F("start_at"))


class EndAfterStart(CheckConstraint):
    """``end_at > start_at``: the database checks it on every write, and validation in Python.

    A check constraint validates with a query of its own (``SELECT 1 WHERE …``); every window
    written through a form or the API would pay that round trip for a comparison of two values
    it already holds. Values Python can't compare as they are (expressions, text, naive beside
    aware) are left to that query. It migrates as the plain CheckConstraint it is.
    """

    def __init__(self, *, name: str, violation_error_message, **kwargs):
        condition = kwargs.pop("condition", _END_AFTER_START)
        if condition != _END_AFTER_START:
            raise TypeError("EndAfterStart checks end_at > start_at only; use a CheckConstraint for another condition.")
        kwargs.setdefault("violation_error_code", "end_before_start")
        super().__init__(condition=condition, name=name, violation_error_message=violation_error_message, **kwargs)

    def validate(self, model, instance, exclude=None, using=DEFAULT_DB_ALIAS):
        if exclude and {"start_at", "end_at"} & set(exclude):
            return  # as CheckConstraint skips a condition on a field it was told to leave out
        start, end = instance.start_at, instance.end_at
        if start is None or end is None:
            return  # NULL passes a check constraint
        if not (isinstance(start, datetime) and isinstance(end, datetime) and is_aware(start) == is_aware(end)):
            super().validate(model, instance, exclude=exclude, using=using)
        elif not end > start:
            raise ValidationError(self.get_violation_error_message(), code=self.violation_error_code)

    def deconstruct(self):
        _, args, kwargs = super().deconstruct()
        return "django.db.models.CheckConstraint", args, kwargs


def end_after_start(*, name: str, message) -> CheckConstraint:
    return EndAfterStart(name=name, violation_error_message=message)


# psycopg's C timestamptz loader (psycopg-binary), or None with the pure-Python implementation.
_TIMESTAMPTZ_OID = psycopg.adapters.types["timestamptz"].oid
_PSYCOPG_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT)
if _PSYCOPG_TIMESTAMPTZ_LOADER.__module__.startswith("psycopg."):
    _PSYCOPG_TIMESTAMPTZ_LOADER = None


class UtcTimestamptzLoader(Loader):
    """Instants read by psycopg's C loader on a session in UTC: the values Django's loader gives, sooner.

    Django reads every timestamptz through a subclass of psycopg's pure-Python loader (to set the
    zone it wants), and a list of 100 windows holds 400 of them. On a session whose time zone is
    UTC the C loader already answers in ``datetime.UTC``. Its ``timezone`` tells Django's cursors
    that it agrees with the connection's zone, so they keep it.
    """

    timezone = UTC

    def __init__(self, oid, context=None):
        super().__init__(oid, context)
        self._load = _PSYCOPG_TIMESTAMPTZ_LOADER(oid, context).load

    def load(self, data):
        return self._load(data)


def read_instants_in_c(sender, connection, **kwargs) -> None:
    """connection_created: use UtcTimestamptzLoader where the session is in UTC and the C loader exists.

    A pooled connection is "created" at every checkout; it keeps the loader from its first one.
    """
    if connection.vendor != "postgresql" or _PSYCOPG_TIMESTAMPTZ_LOADER is None:
        return
    session = connection.connection
    if session.adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT) is UtcTimestamptzLoader:
        return
    if session.info.parameter_status("TimeZone") == "UTC" and connection.timezone == UTC:
        session.adapters.register_loader(_TIMESTAMPTZ_OID, UtcTimestamptzLoader)


def save_changed(instance, names) -> list[str]:
    """Write only the named fields (and ``updated_at``), so a concurrent writer's other columns survive; none, nothing.

    Returns the fields written.
    """
    concrete = {field.name for field in instance._meta.concrete_fields}
    changed = [name for name in dict.fromkeys(names) if name in concrete]
    if changed:
        if "updated_at" in concrete and "updated_at" not in changed:
            changed.append("updated_at")
        instance.save(update_fields=changed)
    return changed
