"""The API's JSON parser: bodies a client can't mean are refused (400) before they reach Python code that trusts them.

DRF's own parser hands ``json.load`` whatever arrives, which lets a client

- nest arrays or objects 100,000 deep: the decoder recurses once per level and fails with a
  RecursionError (a 500) — or, under the recursion limit, hands that depth to code that recurses too;
- send ``1e400`` (infinity as a float), ``NaN`` or ``Infinity``: they reach fields and lookups as
  floats no column can hold;
- send a 400-digit integer: it reaches a primary key or integer lookup no 64-bit column can hold;
- send any length of body: unlike a form, a JSON body is not held to DATA_UPLOAD_MAX_MEMORY_SIZE.
"""

import codecs
import json
import math
import re
from itertools import accumulate

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, parsers

MAX_DEPTH = 64  # arrays and objects inside each other; no resource here takes more than a few
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what a bigint column (every id and count here) holds

_STRING = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\Z)', re.DOTALL)  # an unterminated string ends the text: one pass
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class BodyTooLarge(RequestDataTooBig):
    """A request body (a file, a JSON document) over the size its endpoint accepts."""

    def __init__(self, max_bytes: int):
        super().__init__(f"A request body over {max_bytes} bytes.")
        self.max_bytes = max_bytes


class StationJSONParser(parsers.JSONParser):
    """JSON with at most MAX_DEPTH levels, finite numbers and 64-bit integers, within DATA_UPLOAD_MAX_MEMORY_SIZE."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise BodyTooLarge(limit)
        try:
            text = codecs.decode(raw, parsers.get_encoding(parser_context or {}))
        except (UnicodeDecodeError, LookupError) as error:
            raise exceptions.ParseError(_("The body is not valid UTF-8 text.")) from error
        _refuse_deep_nesting(text)
        try:
            return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_int64)
        except ValueError as error:
            raise exceptions.ParseError(_("JSON parse error - %(error)s") % {"error": error}) from error


def _refuse_deep_nesting(text: str) -> None:
    """Refuse more than MAX_DEPTH levels before ``json.loads`` recurses into them."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return  # an ordinary body: too few brackets to be too deep, whatever strings hold them
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text))
    if brackets and max(accumulate(_DEPTH_STEP[bracket] for bracket in brackets)) > MAX_DEPTH:
        raise exceptions.ParseError(
            _("The JSON body nests arrays or objects more than %(max)d deep.") % {"max": MAX_DEPTH},
            code="nesting_too_deep")


def _refuse_constant(name: str):
    raise exceptions.ParseError(_("%(value)s is not a number JSON allows.") % {"value": name}, code="number_not_finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise exceptions.ParseError(_("%(value)s is too large a number.") % {"value": text[:40]},
                                    code="number_not_finite")
    return value


def _int64(text: str) -> int:
    # Length first: int() of thousands of digits is slow (and beyond 4300 a ValueError with a message about Python).
    value = int(text) if len(text) <= 20 else None
    if value is None or not INT64_MIN <= value <= INT64_MAX:
        raise exceptions.ParseError(
            _("%(value)s is out of range: integers are from %(min)d to %(max)d.")
            % {"value": text if len(text) <= 40 else f"{text[:20]}…", "min": INT64_MIN, "max": INT64_MAX},
            code="number_out_of_range")
    return value
