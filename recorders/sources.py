"""What a recorder may record: a network stream, a capture device its node offers, or a test tone.

Sources are an allowlist per kind, parsed once here (the model validates with it, the engine
builds ffmpeg's input from the parsed form, never from the text):
- ``http://``, ``https://`` and ``icecast://`` streams: the agent fetches them through
  ``station.outbound`` (public addresses only, every redirect checked) and feeds the bytes to
  ffmpeg's standard input, so ffmpeg opens no URL, file or protocol itself;
- ``srt://host:port`` (options ``streamid``, ``passphrase``, ``pbkeylen``, ``latency``): ffmpeg
  calls the address ``station.outbound`` resolved and allowed, as caller only;
- ``alsa:<device>`` and ``pulse:<device>``: only a device the recorder's node declares
  (``NODE_CAPTURE_DEVICES`` of its agent);
- ``tone:<hertz>``: a sine the station generates (line-up tone, tests).
Files, paths, ffmpeg filter graphs (``lavfi``) and other protocols are refused: they read the
host's files or open other inputs.
"""

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from station import outbound
from station.errors import UserError

STREAM_SCHEMES = ("http", "https", "icecast")
DEVICE_KINDS = ("alsa", "pulse")
SRT_OPTIONS = {"streamid", "passphrase", "pbkeylen", "latency"}
TONE_HERTZ = range(20, 20001)
_DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9:,._=-]{0,99}")
_OPTION_VALUE = re.compile(r"[\x21-\x7e]{1,512}")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")  # no spaces or control characters anywhere in a source
FORMS = "http(s)://…, icecast://…, srt://host:port, alsa:<device>, pulse:<device>, tone:<hertz>"


@dataclass(frozen=True)
class Source:
    kind: str  # "stream", "srt", "device" or "tone"
    text: str  # as the recorder has it
    url: str = ""  # stream: the http(s) URL to fetch; srt: host, port and options as given
    device: str = ""  # device: e.g. "alsa:hw:0,0", as a node declares it
    frequency: int = 0  # tone


def _refuse(text: str, why=None) -> UserError:
    return UserError("source_not_allowed", _("%(source)s can't be recorded: %(why)s"),
                     {"source": text[:200], "why": why or _("use one of %(forms)s") % {"forms": FORMS}})


def parse_source(text: str, *, resolve_now: bool = True) -> Source:
    """The recorder source ``text`` in its parsed form; UserError saying why it is refused.

    Without ``resolve_now`` (the agent, starting a run) host names are not looked up here: the
    connection is checked when it is made, and a slow name server must not hold up the agent.
    """
    if not isinstance(text, str) or not _PRINTABLE.fullmatch(text):
        raise _refuse(str(text), _("sources have no spaces or control characters"))
    kind, _sep, rest = text.partition(":")
    kind = kind.lower()
    if kind in STREAM_SCHEMES:
        url = "http" + text[len("icecast"):] if kind == "icecast" else text
        outbound.check_url(url, resolve_now=resolve_now)
        return Source(kind="stream", text=text, url=url)
    if kind == "srt":
        _check_srt(text, resolve_now=resolve_now)
        return Source(kind="srt", text=text, url=text)
    if kind in DEVICE_KINDS:
        if not _DEVICE_NAME.fullmatch(rest):
            raise _refuse(text, _("a device name is letters, digits and :,._=-"))
        return Source(kind="device", text=text, device=f"{kind}:{rest}")
    if kind == "tone":
        if not rest.isdigit() or int(rest) not in TONE_HERTZ:
            raise _refuse(text, _("a tone is tone:<hertz>, from 20 to 20000"))
        return Source(kind="tone", text=text, frequency=int(rest))
    raise _refuse(text)


def _check_srt(text: str, *, resolve_now: bool) -> None:
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError as error:
        raise _refuse(text, _("its port is not a number")) from error
    if not parts.hostname or not port or parts.path not in ("", "/") or parts.username or parts.fragment:
        raise _refuse(text, _("an SRT source is srt://host:port, with options after ?"))
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in SRT_OPTIONS:
            raise _refuse(text, _("SRT takes the options %(options)s only") % {"options": ", ".join(sorted(SRT_OPTIONS))})
        if not _OPTION_VALUE.fullmatch(value) or (name in ("latency", "pbkeylen") and not value.isdigit()):
            raise _refuse(text, _("the SRT option %(option)s has a malformed value") % {"option": name})
    outbound.check_host(parts.hostname, port, resolve_now=resolve_now)


def srt_caller_url(source: Source) -> str:
    """The URL ffmpeg calls: the address allowed now, the caller mode, each option encoded."""
    parts = urlsplit(source.url)
    address = outbound.public_address(parts.hostname, parts.port)
    host = f"[{address}]" if ":" in address else address
    options = [("mode", "caller"), *parse_qsl(parts.query)]
    return f"srt://{host}:{parts.port}?" + "&".join(f"{name}={quote(value, safe='')}" for name, value in options)


def validate_source(value: str) -> None:
    """The model field's validator: a source of an allowed kind and form (the node's devices are checked by the recorder)."""
    try:
        parse_source(value)
    except UserError as error:
        raise ValidationError(str(error), code=error.code) from error
