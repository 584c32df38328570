"""Bounds on what a window may hold, said once for validation and for the database.

A window is an instant the node agent adds rolls to, converts to a studio's zone and expands into
a series: one near ``datetime``'s limits (9999-12-31) overflows there and stops the agent. So
windows, series anchors and skip dates lie in the years 2000 to 2199, far from those limits and
beyond any real schedule. ``InRange`` and ``ItemsInRange`` are check constraints: the database
holds every write to them, and validation answers them in Python, without a query of its own.
"""

import copy
from datetime import UTC, date, datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS
from django.db.models import BooleanField, CheckConstraint, F, Func, Q, Value
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2199, 12, 31)
EARLIEST = datetime.combine(FIRST_DAY, time(), UTC)
LATEST = datetime.combine(LAST_DAY + timedelta(days=1), time(), UTC)  # the midnight that ends the last day
MAX_SKIP_DATES = 1000


def _out_of_range(value: date | datetime) -> ValidationError:
    return ValidationError(
        _("%(value)s is outside the years this station schedules (%(first)s to %(last)s)."),
        code="date_out_of_range", params={"value": value.isoformat(), "first": FIRST_DAY, "last": LAST_DAY},
    )


def is_schedulable(instant: datetime) -> bool:
    return EARLIEST <= instant <= LATEST


def validate_schedulable(value: datetime) -> None:
    """Refuse an instant outside the station's years."""
    if not is_schedulable(value):
        raise _out_of_range(value)


def validate_skip_dates(value: list[date]) -> None:
    """Refuse more than MAX_SKIP_DATES skip dates, or one outside the station's years."""
    if len(value) > MAX_SKIP_DATES:
        raise ValidationError(_("At most %(max)d skip dates (%(count)d given)."), code="too_many_skip_dates",
                              params={"max": MAX_SKIP_DATES, "count": len(value)})
    outside = sorted(day for day in value if not FIRST_DAY <= day <= LAST_DAY)
    if outside:
        raise _out_of_range(outside[0])


class EveryItemBetween(Func):
    """SQL ``lower <= ALL(array) AND upper >= ALL(array)``: each item of an array in bounds (an empty one passes)."""

    output_field = BooleanField()

    def __init__(self, array, lower, upper):
        super().__init__(array, Value(lower), Value(upper))

    def as_sql(self, compiler, connection, **extra_context):
        (items, items_params), (lower, lower_params), (upper, upper_params) = (
            compiler.compile(expression) for expression in self.get_source_expressions())
        return (f"({lower} <= ALL({items}) AND {upper} >= ALL({items}))",
                (*lower_params, *items_params, *upper_params, *items_params))


class _CheckedInPython(CheckConstraint):
    """A check constraint whose ``condition`` the database applies and ``holds`` repeats for validation.

    Django validates a check constraint with a query of its own (``SELECT 1 WHERE …``); every window
    written through a form or the API would pay one per check for values it already holds. Each field
    is checked alone (NULL passes, as in SQL); a value Python can't compare (an expression, a naive
    datetime) is left to that query. It migrates as the plain CheckConstraint it is.
    """

    def __init__(self, *, fields: tuple[str, ...], condition, name: str, violation_error_code: str,
                 violation_error_message):
        super().__init__(condition=condition, name=name, violation_error_code=violation_error_code,
                         violation_error_message=violation_error_message)
        self.fields = fields

    def holds(self, value) -> bool:
        raise NotImplementedError

    def validate(self, model, instance, exclude=None, using=DEFAULT_DB_ALIAS):
        for name in self.fields:
            if exclude and name in exclude:
                continue  # as CheckConstraint leaves out a condition on a field it was told to skip
            value = getattr(instance, name)
            try:
                held = value is None or self.holds(value)
            except TypeError:
                return super().validate(model, instance, exclude=exclude, using=using)
            if not held:
                raise ValidationError(self.get_violation_error_message(), code=self.violation_error_code)
        return None

    def clone(self):
        return copy.copy(self)  # Django's clone rebuilds a constraint from its migration form, a plain CheckConstraint

    def deconstruct(self):
        _, args, kwargs = super().deconstruct()
        return "django.db.models.CheckConstraint", args, kwargs


class InRange(_CheckedInPython):
    """Each of ``fields`` lies in [lower, upper]."""

    def __init__(self, *fields: str, lower, upper, **kwargs):
        condition = Q(**{f"{field}__range": (lower, upper) for field in fields})
        super().__init__(fields=fields, condition=condition, **kwargs)
        self.lower, self.upper = lower, upper

    def holds(self, value) -> bool:
        return self.lower <= value <= self.upper


class ItemsInRange(_CheckedInPython):
    """An array ``field`` holds at most ``max_items`` items, each in [lower, upper]."""

    def __init__(self, field: str, *, lower, upper, max_items: int, **kwargs):
        # array_length is NULL for an empty array, which passes as it should
        condition = Q(**{f"{field}__len__lte": max_items}) & Q(EveryItemBetween(F(field), lower, upper))
        super().__init__(fields=(field,), condition=condition, **kwargs)
        self.lower, self.upper, self.max_items = lower, upper, max_items

    def holds(self, value) -> bool:
        return len(value) <= self.max_items and all(self.lower <= item <= self.upper for item in value)


def _filled_in(message, params: dict):
    """``message % params``, translated when shown rather than when the models load."""
    return lazy(lambda: str(message) % params, str)()


def instants_in_range(*fields: str, name: str) -> InRange:
    """The database's and validation's check that window instants lie in the station's years."""
    return InRange(*fields, lower=EARLIEST, upper=LATEST, name=name, violation_error_code="date_out_of_range",
                   violation_error_message=_filled_in(_("Windows lie between %(first)s and %(last)s."),
                                                      {"first": FIRST_DAY, "last": LAST_DAY}))


def skip_dates_in_range(field: str, *, name: str) -> ItemsInRange:
    """The database's and validation's check on a series' skip dates: how many, and in which years."""
    return ItemsInRange(field, lower=FIRST_DAY, upper=LAST_DAY, max_items=MAX_SKIP_DATES, name=name,
                        violation_error_code="skip_dates_out_of_range",
                        violation_error_message=_filled_in(
                            _("At most %(max)d skip dates, each between %(first)s and %(last)s."),
                            {"max": MAX_SKIP_DATES, "first": FIRST_DAY, "last": LAST_DAY}))


def move_rows_within_bounds(model, *, pairs: tuple[tuple[str, str], ...], skip_dates: str = "",
                            out_of_bounds: dict | None = None) -> int:
    """For migrations: rows written before these bounds move inside them, so their constraints can be added.

    Each (start, end) pair is brought into the station's years, end still after start; skip dates
    outside them go, and at most MAX_SKIP_DATES stay. A row whose instants moved also gets
    ``out_of_bounds`` (e.g. a failed status with the reason), since its window is no longer the one
    it was given. Returns the rows whose instants moved.
    """
    minute = timedelta(minutes=1)
    outside = Q()
    for start, end in pairs:
        for name in (start, end):
            outside |= Q(**{f"{name}__lt": EARLIEST}) | Q(**{f"{name}__gt": LATEST})
    moved = 0
    for row in model.objects.filter(outside):
        changes = {}
        for start, end in pairs:
            if getattr(row, start) is None or getattr(row, end) is None:
                continue
            changes[start] = min(max(getattr(row, start), EARLIEST), LATEST - minute)
            changes[end] = min(max(getattr(row, end), changes[start] + minute), LATEST)
        model.objects.filter(pk=row.pk).update(**changes, **(out_of_bounds or {}))
        moved += 1
    if skip_dates:
        for row in model.objects.exclude(**{skip_dates: []}).only("pk", skip_dates):
            kept = sorted(day for day in getattr(row, skip_dates) if FIRST_DAY <= day <= LAST_DAY)[-MAX_SKIP_DATES:]
            if kept != sorted(getattr(row, skip_dates)):
                model.objects.filter(pk=row.pk).update(**{skip_dates: kept})
    return moved
