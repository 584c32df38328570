"""Database building blocks shared by the apps."""

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import BigIntegerRangeField, DateTimeRangeField, RangeOperators
from django.db.models import CheckConstraint, F, Func, Q, Value


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


def end_after_start(*, name: str, message) -> CheckConstraint:
    return CheckConstraint(
        condition=Q(end_at__gt=F("start_at")),
        name=name,
        violation_error_code="end_before_start",
        violation_error_message=message,
    )
