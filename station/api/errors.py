"""One error shape for every API failure: ``{"error": {"code", "message", "params", "fields"}}``.

Messages are rendered in the request's language (Accept-Language, through LocaleMiddleware).
A UserError answers 409 when it is about the resource's current state (the request was fine,
the resource is not in a state for it) and 400 when it is about the input.
"""

import logging

from django.apps import apps
from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from station.errors import TransitionNotAllowed, UserError

logger = logging.getLogger(__name__)

# UserError codes raised by services when the row's state forbids the action.
STATE_CONFLICT_CODES = frozenset({
    "window_over", "not_pending", "not_recording", "window_claimed",  # recorder schedules
    "already_paused", "not_paused", "channel_not_running",  # channels
    "alert_already_acknowledged", "not_failed", "source_disabled", "asset_not_ready",
    "node_online",  # nodes: a running agent's node is renamed or removed only once it stops
})


def _overlap_codes() -> frozenset[str]:
    """Codes of exclusion constraints: a window that overlaps another row conflicts with it."""
    return frozenset(
        constraint.violation_error_code
        for model in apps.get_models()
        for constraint in model._meta.constraints
        if isinstance(constraint, ExclusionConstraint) and constraint.violation_error_code
    )


def is_conflict(error: UserError) -> bool:
    return isinstance(error, TransitionNotAllowed) or error.code in STATE_CONFLICT_CODES or error.code in _overlap_codes()


def error_body(code: str, message, *, params: dict | None = None, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": str(message), "params": _plain(params or {}), "fields": fields or {}}}


def _plain(params: dict) -> dict:
    """Parameters as JSON values: numbers and booleans stay, anything else (lazy text, exceptions) becomes text."""
    return {key: value if isinstance(value, (int, float, bool)) or value is None else str(value) for key, value in params.items()}


def _flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    """Nested serializer errors as {"items.0.asset": ["message", …]}."""
    if isinstance(detail, dict):
        flat = {}
        for key, value in detail.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(detail, list) and any(isinstance(item, (dict, list)) for item in detail):
        flat = {}
        for index, value in enumerate(detail):
            flat.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    messages = [str(item) for item in detail] if isinstance(detail, list) else [str(detail)]
    return {prefix or serializers.api_settings.NON_FIELD_ERRORS_KEY: messages} if messages else {}


def _validation_body(exc: exceptions.ValidationError) -> dict:
    fields = _flatten(exc.detail)
    codes = _flatten(exc.get_codes())
    if len(fields) == 1:
        (name, messages), = fields.items()
        if len(messages) == 1:
            # One problem: its own code and message, so clients can branch on it.
            return error_body(codes[name][0], messages[0], fields=fields)
    return error_body("invalid", _("The request has invalid fields; see fields."), fields=fields)


def too_large_body(max_bytes: int) -> dict:
    """The 413 answer's body (also sent by station.body_limit, before Django runs)."""
    return error_body("too_large", _("The request body is larger than the %(max_bytes)d bytes accepted here.")
                      % {"max_bytes": max_bytes}, params={"max_bytes": max_bytes})


def _too_large(exc: RequestDataTooBig) -> Response:
    # station.api.parsers.BodyTooLarge says its limit; Django's own is about a form body.
    max_bytes = getattr(exc, "max_bytes", settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    return Response(too_large_body(max_bytes), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)


def exception_handler(exc, context):
    """Answer every API failure in the one error shape (DRF's exception handler, reshaped)."""
    if isinstance(exc, UserError):
        logger.info("user error %s", exc.code, exc_info=exc.inner)
        conflict = is_conflict(exc)
        # A UserError about the input may name the fields it is about (e.g. unknown fields in a write).
        return Response(error_body(exc.code, exc, params=exc.params, fields=getattr(exc, "fields", None)),
                        status=status.HTTP_409_CONFLICT if conflict else status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, (ProtectedError, RestrictedError)):
        return Response(error_body("protected", _("This is still in use (e.g. in a playlist or show) and can't be deleted.")),
                        status=status.HTTP_409_CONFLICT)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()  # the same answer for missing and other studios' rows
    if isinstance(exc, RequestDataTooBig):
        return _too_large(exc)
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return Response(error_body("too_many_fields", _("The request has more fields or files than accepted here.")),
                        status=status.HTTP_400_BAD_REQUEST)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = _validation_body(exc)
    elif isinstance(exc, exceptions.APIException):
        params = {"wait_seconds": int(exc.wait)} if isinstance(exc, exceptions.Throttled) and exc.wait else {}
        response.data = error_body(str(exc.get_codes()), exc.detail, params=params)
    return response


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable identifier of the error, e.g. `window_overlap`, `not_found`.")
    message = serializers.CharField(help_text="What went wrong, in the request's language (Accept-Language).")
    params = serializers.DictField(help_text="Named values in the message (e.g. the schedule's name).")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Field errors by field name (nested fields dotted, e.g. `items.0.asset`); empty otherwise.",
    )


class ErrorSerializer(serializers.Serializer):
    """The body of every error response."""

    error = ErrorDetailSerializer()
