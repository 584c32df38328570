"""Icecast: the engine sends the stream to an operator's server, at a public address checked at start."""

import re

from django.utils.translation import gettext_lazy as _

from playout.outputs.base import BITRATE, MOUNT, Invalid, Output, Setting, mp3_encoder, text, whole_number
from station import outbound
from station.errors import UserError

_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*")
_PASSWORD = re.compile(r"[\x20-\x7e]{1,128}")  # printable ASCII: what Icecast's source protocol carries


def _icecast_host(value):
    text(_HOST, _("a host name or IPv4 address"))(value)
    try:
        outbound.check_host(value, 8000)
    except UserError as error:
        raise Invalid(reason=str(error)) from error
    return value


class IcecastOutput(Output):
    name = "icecast"
    schema = {
        "host": Setting(_icecast_host),
        "port": Setting(whole_number(1, 65535), 8000),
        "password": Setting(text(_PASSWORD, _("printable ASCII, 1 to 128 characters"))),
        "mount": MOUNT,
        "bitrate": BITRATE,
    }

    def liquidsoap(self, settings, source, liq_string, *, file_path=None):
        # The host's address as checked just now (station.outbound): the engine connects there and nowhere else.
        address = outbound.public_address(settings["host"], settings["port"])
        return (f"output.icecast({mp3_encoder(settings['bitrate'])}, host={liq_string(address)}, "
                f"port={int(settings['port'])}, password={liq_string(settings['password'])}, "
                f"mount={liq_string(settings['mount'])}, {source})")


OUTPUT = IcecastOutput()
