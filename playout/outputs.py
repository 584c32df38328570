"""What staff may set for each kind of channel output, checked by type and format.

``clean_output_settings`` is the one check: the channel's ``clean()`` runs it (so the admin and
the API refuse bad settings with a field error), and the node agent runs it again before it
writes an engine's script, so a row written around the model fails only its own channel. A
setting is a whole number in its range, a choice, or text of a narrow format; nothing else
reaches an engine. File outputs take no path: the station names the file, under the node's
directory (``file_output_path``).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from station import outbound
from station.errors import UserError

BITRATES = (32, 48, 64, 96, 128, 160, 192, 256, 320)
FILE_FORMATS = ("mp3", "wav")
_MOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*")
_PASSWORD = re.compile(r"[\x20-\x7e]{1,128}")  # printable ASCII: what Icecast's source protocol carries


class _Invalid(Exception):
    """A setting's value is not what it must be (``expected``), or is refused for a ``reason`` of its own."""

    def __init__(self, expected=None, params=None, *, reason=None):
        super().__init__(expected or reason)
        self.expected, self.params, self.reason = expected, params or {}, reason


def harbor_ports() -> range:
    """The ports harbor outputs may listen on: a range the station opens to listeners (PLAYOUT_HARBOR_PORTS)."""
    low, _sep, high = settings.PLAYOUT_HARBOR_PORTS.partition("-")
    return range(int(low), int(high or low) + 1)


def _whole_number(low: int, high: int) -> Callable:
    def check(value):
        if type(value) is not int or not low <= value <= high:  # bool is an int too, and no port
            raise _Invalid(_("a whole number from %(low)d to %(high)d"), {"low": low, "high": high})
        return value
    return check


def _port_for_listeners(value):
    ports = harbor_ports()
    return _whole_number(ports.start, ports.stop - 1)(value)


def _choice(choices: tuple) -> Callable:
    def check(value):
        if value not in choices or type(value) is bool:
            raise _Invalid(_("one of %(choices)s"), {"choices": ", ".join(str(choice) for choice in choices)})
        return value
    return check


def _text(pattern: re.Pattern, description) -> Callable:
    def check(value):
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise _Invalid(description)
        return value
    return check


def _icecast_host(value):
    _text(_HOST, _("a host name or IPv4 address"))(value)
    try:
        outbound.check_host(value, 8000)
    except UserError as error:
        raise _Invalid(reason=str(error)) from error
    return value


@dataclass(frozen=True)
class Setting:
    check: Callable
    default: object = None  # None: required


_MOUNT_SETTING = Setting(_text(_MOUNT, _("letters, digits, dots, dashes and underscores (at most 64)")), "live")
_BITRATE_SETTING = Setting(_choice(BITRATES), 128)
SCHEMAS: dict[str, dict[str, Setting]] = {
    # A harbor's port is always written out: the database keeps two channels off one port (playout.models).
    "harbor": {"port": Setting(_port_for_listeners), "mount": _MOUNT_SETTING, "bitrate": _BITRATE_SETTING},
    "icecast": {
        "host": Setting(_icecast_host),
        "port": Setting(_whole_number(1, 65535), 8000),
        "password": Setting(_text(_PASSWORD, _("printable ASCII, 1 to 128 characters"))),
        "mount": _MOUNT_SETTING,
        "bitrate": _BITRATE_SETTING,
    },
    "file": {"format": Setting(_choice(FILE_FORMATS), "mp3"), "bitrate": _BITRATE_SETTING},
    "decklink": {},  # hardware: bound to its host, driven outside the engine
}


def clean_output_settings(output_type: str, given) -> dict:
    """The settings of an output with their defaults filled in; ValidationError naming every bad one."""
    schema = SCHEMAS.get(output_type)
    if schema is None:
        raise ValidationError(_("Unknown output %(output)s."), code="unknown_output", params={"output": output_type})
    if not isinstance(given, dict):
        raise ValidationError(_("Output settings are an object of names and values."), code="invalid_output_settings")
    problems = [
        ValidationError(_("Unknown setting %(setting)s for this output; it takes %(known)s."), code="unknown_output_setting",
                        params={"setting": name, "known": ", ".join(schema) or _("none")})
        for name in given if name not in schema
    ]
    cleaned = {}
    for name, setting in schema.items():
        if name not in given and setting.default is None:
            problems.append(ValidationError(_("The setting %(setting)s is required for this output."),
                                            code="missing_output_setting", params={"setting": name}))
            continue
        try:
            cleaned[name] = setting.check(given.get(name, setting.default))
        except _Invalid as invalid:
            if invalid.reason:
                problems.append(ValidationError(_("%(setting)s: %(reason)s"), code="output_setting_refused",
                                                params={"setting": name, "reason": invalid.reason}))
            else:
                problems.append(ValidationError(_("%(setting)s must be %(expected)s."), code="invalid_output_setting",
                                                params={"setting": name, "expected": str(invalid.expected) % invalid.params}))
    if problems:
        raise ValidationError(problems)
    return cleaned


def file_output_path(node_dir: Path, channel_id: int, file_format: str) -> Path:
    """Where a channel's file output is written on its node: named by the station, never by staff."""
    return node_dir / "outputs" / f"channel-{int(channel_id)}.{_choice(FILE_FORMATS)(file_format)}"
