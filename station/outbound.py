"""Network connections the station makes on an operator's behalf: public addresses only.

Webhooks, ingest feeds and downloads, webstream checks and relays, recorder streams and Icecast
outputs all reach hosts an operator typed. Each connection goes through this one check: the host
is resolved, every address it resolves to is judged, and the socket connects only to an address
that passed, so neither another notation of 127.0.0.1 (``2130706433``, ``0x7f.1``, ``[::ffff:7f00:1]``)
nor a DNS answer that changes between a check and the connection, nor a redirect to an internal
host reaches it. Refused: loopback, private, link-local (cloud metadata at 169.254.169.254),
shared (100.64/10), multicast, reserved and unspecified addresses, IPv4 inside IPv6 (mapped, 6to4,
Teredo, NAT64) judged as the IPv4 address it carries. A station whose sources really are internal
lists their networks in ``OUTBOUND_ALLOWED_NETWORKS``.
"""

import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from requests.adapters import HTTPAdapter
from urllib3 import connection as urllib3_connection
from urllib3 import connectionpool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from station.errors import UserError

MAX_REDIRECTS = 5
RESOLVE_SECONDS = 3
_resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="resolve")  # look-ups that can be waited for with a deadline
# IPv6 prefixes whose last 32 bits are an IPv4 address: IPv4-compatible, SIIT, NAT64 (well-known and local use).
_CARRYING_IPV4_IN_LOW_BITS = tuple(ipaddress.ip_network(prefix) for prefix in
                                   ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48"))
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")  # the only IPv6 addresses routed on the Internet
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@cache
def _allowed_networks(configured: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(network, strict=False) for network in configured)


def allowed_networks() -> tuple:
    return _allowed_networks(tuple(settings.OUTBOUND_ALLOWED_NETWORKS))


def _carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it carries one."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if any(address in prefix for prefix in _CARRYING_IPV4_IN_LOW_BITS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_allowed(address: Address | str) -> bool:
    """Whether the station may connect to ``address`` for an operator."""
    address = ipaddress.ip_address(address)
    if address.version == 6 and address.scope_id:
        address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
    if any(address in network for network in allowed_networks() if network.version == address.version):
        return True
    if address.version == 6:
        if (carried := _carried_ipv4(address)) is not None:
            return address_allowed(carried)
        return address in _GLOBAL_UNICAST and address.is_global
    return address.is_global and not address.is_multicast


def _refused(host: str) -> UserError:
    return UserError(
        "address_not_allowed",
        _("%(host)s is an internal address (loopback, private, link-local or reserved); the station does not "
          "connect there for you. An administrator can allow it with OUTBOUND_ALLOWED_NETWORKS."),
        {"host": host},
    )


def _unresolvable(host: str, inner: BaseException) -> UserError:
    return UserError("host_not_found", _("%(host)s could not be resolved."), {"host": host}, inner=inner)


def resolve(host: str, port: int, *, kind: int = socket.SOCK_STREAM, numeric_only: bool = False) -> list[tuple]:
    """The (family, type, proto, sockaddr) of ``host`` the station may connect to; UserError if none.

    A name whose servers don't answer within RESOLVE_SECONDS counts as not found: an operator's
    host must not hold up a web request or a node agent's loop for as long as the resolver waits.
    With ``numeric_only``, only an address literal (in any notation) is judged, with no look-up.
    """
    host = host.strip("[]")
    flags = socket.AI_NUMERICHOST if numeric_only else 0
    try:
        answers = _resolver.submit(socket.getaddrinfo, host, port, type=kind, flags=flags).result(RESOLVE_SECONDS)
    except (socket.gaierror, UnicodeError, TimeoutError) as error:
        raise _unresolvable(host, error) from error
    allowed = [(family, socktype, proto, sockaddr) for family, socktype, proto, _name, sockaddr in answers
               if address_allowed(sockaddr[0])]
    if not allowed:
        raise _refused(host)
    return allowed


def public_address(host: str, port: int) -> str:
    """One address of ``host`` the station may connect to, for engines given an address instead of a name."""
    return resolve(host, port)[0][3][0]


def check_url(url: str, *, schemes: tuple[str, ...] = ("http", "https"), resolve_now: bool = True) -> None:
    """Refuse a URL the station must not fetch: another scheme, no host, or a host that is internal.

    An address literal is judged as it stands; with ``resolve_now``, a name that resolves only to
    internal addresses is refused too. One that doesn't resolve (yet) passes, since the connection
    is checked again when it is made.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in schemes:
        raise UserError("scheme_not_allowed", _("%(url)s: only %(schemes)s URLs are allowed."),
                        {"url": url, "schemes": ", ".join(schemes)})
    try:
        host, port = parts.hostname, parts.port
    except ValueError as error:
        raise UserError("bad_url", _("%(url)s is not a valid URL."), {"url": url}, inner=error) from error
    if not host:
        raise UserError("bad_url", _("%(url)s has no host."), {"url": url})
    if parts.username or parts.password:
        raise UserError("credentials_in_url", _("%(url)s carries a user name or password; the station does not "
                                                "send credentials in URLs."), {"url": url})
    check_host(host, port or 80, resolve_now=resolve_now)


def check_host(host: str, port: int, *, resolve_now: bool = True) -> None:
    """Refuse a host that is internal: an address literal as it stands, a name (``resolve_now``) by its addresses.

    A name that doesn't resolve (yet) passes: the connection is checked again when it is made.
    """
    if host.rstrip(".").lower() == "localhost" or host.rstrip(".").lower().endswith(".localhost"):
        raise _refused(host)  # loopback by definition (RFC 6761), whatever a resolver says
    try:
        resolve(host, port, numeric_only=not resolve_now)  # an address literal is judged either way
    except UserError as error:
        if error.code != "host_not_found":
            raise


def validate_public_urls(field: str, urls, *, resolve_now: bool = True) -> None:
    """Django's side of ``check_url`` for a model's ``clean()``: a field error for the admin and the API."""
    for url in urls:
        try:
            check_url(url, resolve_now=resolve_now)
        except UserError as error:
            raise ValidationError({field: ValidationError(str(error), code=error.code)}) from error


def _connect(host: str, port: int, timeout, source_address, socket_options) -> socket.socket:
    """urllib3's create_connection, to the addresses ``resolve`` allows only."""
    last_error = None
    for family, socktype, proto, sockaddr in resolve(host, port):
        sock = socket.socket(family, socktype, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as error:
            last_error = error
            sock.close()
    raise last_error


class _GuardedConnectionMixin:
    def _new_conn(self) -> socket.socket:
        try:
            return _connect(self._dns_host, self.port, self.timeout, self.source_address, self.socket_options)
        except UserError as error:
            if error.code == "host_not_found":
                raise NameResolutionError(self.host, self, error.inner) from error
            raise  # not a network failure: refused here, never retried
        except TimeoutError as error:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from error
        except OSError as error:
            raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


class _GuardedHTTPConnection(_GuardedConnectionMixin, urllib3_connection.HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, urllib3_connection.HTTPSConnection):
    pass


class _GuardedHTTPPool(connectionpool.HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(connectionpool.HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """An adapter whose every connection, redirects included, goes to allowed addresses only."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        raise UserError("proxy_not_supported", _("Requests made for operators do not go through proxies."))


def guarded_session(*, user_agent: str) -> requests.Session:
    """A requests session for URLs an operator gave: public addresses only, redirects checked the same way."""
    session = requests.Session()
    session.trust_env = False  # an environment proxy would connect for us, unchecked
    session.max_redirects = MAX_REDIRECTS
    session.headers["User-Agent"] = user_agent
    adapter = GuardedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def safe_excerpt(text: str, limit: int = 120) -> str:
    """The start of a reply worth showing a person: printable, short, one line."""
    printable = "".join(character if character.isprintable() else " " for character in text[: limit * 2])
    return " ".join(printable.split())[:limit]
