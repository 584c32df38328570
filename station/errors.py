"""Errors meant for people.

A ``UserError`` carries a stable code, a translatable message with named
parameters, and the inner error that caused it (kept for the log, never shown).
The admin, the API and the dashboard show ``str(error)`` as it is.
"""

import contextlib

from django.db import IntegrityError
from django.utils.translation import gettext_lazy as _


class UserError(Exception):
    """A failure a person can understand and act on."""

    def __init__(self, code: str, message, params: dict | None = None, *, inner: BaseException | None = None):
        self.code = code
        self.message = message
        self.params = params or {}
        self.inner = inner
        super().__init__(code)
        if inner is not None:
            self.__cause__ = inner

    def __str__(self) -> str:
        return str(self.message) % self.params if self.params else str(self.message)

    def __repr__(self) -> str:
        return f"UserError({self.code!r}, {str(self)!r})"


class TransitionNotAllowed(UserError):
    """A state change asked of an object that is no longer in a state that allows it."""

    def __init__(self, obj, target: str):
        super().__init__(
            "transition_not_allowed",
            _("%(object)s is %(status)s and cannot become %(target)s."),
            {"object": str(obj), "status": obj.get_status_display(), "target": target},
        )


def _constraint_named(name: str):
    from django.apps import apps

    for model in apps.get_models():
        for constraint in model._meta.constraints:
            if constraint.name == name:
                return constraint
    return None


@contextlib.contextmanager
def constraint_errors():
    """Turn a database constraint violation into the constraint's own UserError."""
    try:
        yield
    except IntegrityError as error:
        diag = getattr(error.__cause__, "diag", None)
        constraint = _constraint_named(getattr(diag, "constraint_name", None) or "")
        if constraint is None:
            raise
        raise UserError(
            constraint.violation_error_code or constraint.name,
            constraint.violation_error_message,
            inner=error,
        ) from error
