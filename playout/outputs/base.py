"""What every channel output is: its settings, checked by type and format, and the engine output it makes.

``Output.clean`` is the one check: the channel's ``clean()`` runs it (so the admin and the API
refuse bad settings with a field error), and the node agent runs it again before it writes an
engine's script, so a row written around the model fails only its own channel. A setting is a
whole number in its range, a choice, or text of a narrow format; nothing else reaches an engine.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from station.errors import UserError
from station.models import Node

BITRATES = (32, 48, 64, 96, 128, 160, 192, 256, 320)
_MOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Invalid(Exception):
    """A setting's value is not what it must be (``expected``), or is refused for a ``reason`` of its own."""

    def __init__(self, expected=None, params=None, *, reason=None):
        super().__init__(expected or reason)
        self.expected, self.params, self.reason = expected, params or {}, reason


def whole_number(low: int, high: int) -> Callable:
    def check(value):
        if type(value) is not int or not low <= value <= high:  # bool is an int too, and no port
            raise Invalid(_("a whole number from %(low)d to %(high)d"), {"low": low, "high": high})
        return value
    return check


def choice(choices: tuple) -> Callable:
    def check(value):
        if value not in choices or type(value) is bool:
            raise Invalid(_("one of %(choices)s"), {"choices": ", ".join(str(option) for option in choices)})
        return value
    return check


def text(pattern: re.Pattern, description) -> Callable:
    def check(value):
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise Invalid(description)
        return value
    return check


@dataclass(frozen=True)
class Setting:
    check: Callable
    default: object = None  # None: required


MOUNT = Setting(text(_MOUNT, _("letters, digits, dots, dashes and underscores (at most 64)")), "live")
BITRATE = Setting(choice(BITRATES), 128)


def mp3_encoder(bitrate: int) -> str:
    return f"%mp3(bitrate={int(bitrate)})"


class Output:
    """A kind of channel output: one subclass per module of this package, its instance in the module's ``OUTPUT``."""

    name: str
    schema: dict[str, Setting] = {}
    drives_engine = True  # False: the station's engine does not run it (the agent starts none for it)
    # Bound to its host: a failure alerts instead of failing over. Apart from drives_engine: a sound card is both.
    hardware = False
    needs_capability = Node.Capability.PLAYOUT  # what a node must offer to run it

    def clean(self, given) -> dict:
        """Return the settings with their defaults filled in; raise ValidationError naming every bad one."""
        if not isinstance(given, dict):
            raise ValidationError(_("Output settings are an object of names and values."), code="invalid_output_settings")
        problems = [
            ValidationError(_("Unknown setting %(setting)s for this output; it takes %(known)s."),
                            code="unknown_output_setting",
                            params={"setting": name, "known": ", ".join(self.schema) or _("none")})
            for name in given if name not in self.schema
        ]
        cleaned = {}
        for name, setting in self.schema.items():
            if name not in given and setting.default is None:
                problems.append(ValidationError(_("The setting %(setting)s is required for this output."),
                                                code="missing_output_setting", params={"setting": name}))
                continue
            try:
                cleaned[name] = setting.check(given.get(name, setting.default))
            except Invalid as invalid:
                if invalid.reason:
                    problems.append(ValidationError(_("%(setting)s: %(reason)s"), code="output_setting_refused",
                                                    params={"setting": name, "reason": invalid.reason}))
                else:
                    problems.append(ValidationError(_("%(setting)s must be %(expected)s."), code="invalid_output_setting",
                                                    params={"setting": name,
                                                            "expected": str(invalid.expected) % invalid.params}))
        if problems:
            raise ValidationError(problems)
        return cleaned

    def file_path(self, node_dir: Path, channel_id: int, settings: dict) -> Path | None:
        """Return the file this output writes on its node (named by the station, never by staff), if any."""
        return None

    def listener_url(self, channel, settings: dict) -> str | None:
        """Where listeners hear the channel through this output, if they can."""
        return None

    def liquidsoap(self, settings: dict, source: str, liq_string: Callable[[object], str], *,
                   file_path: Path | None = None) -> str:
        """Return the Liquidsoap output playing ``source`` with cleaned ``settings``.

        Every text goes through ``liq_string`` (handed in by playout.liquidsoap, which asks the
        backends: no import cycle), every number is formatted from a checked int.
        """
        raise UserError("output_not_supported", _("Liquidsoap cannot drive a %(output)s output."), {"output": self.name})
