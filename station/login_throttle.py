"""Failed logins, counted per username and per client address where every web process sees them.

The admin's login form and the API's token endpoint both check passwords inside ``login_attempt``:

- Each attempt counts as a failure before its password is checked, and is taken back when it
  succeeds: guesses sent in parallel can't check more passwords than the limit between them.
- With ``LOGIN_MAX_FAILURES`` failures for the username, or ``LOGIN_MAX_FAILURES_PER_ADDRESS`` from
  the address, an attempt is refused (``LoginLocked``) without checking the password, until
  ``LOGIN_LOCKOUT_SECONDS`` after the last one. An address gets more: a station's whole desk often
  shares one (a NAT), and a few people's typos must not lock everyone out during a show.
- A success takes back its own attempt only: it resets no count, so a user logging in elsewhere
  doesn't hand an attacker a fresh set of guesses on that username or from that address.
- The counts live in the ``login`` cache: Redis with REDIS_URL, otherwise a database table
  (``createcachetable``), because several Daphne processes serve one socket and a count in one
  process's memory would multiply the limit by their number.
"""

import contextlib
import hashlib
import ipaddress
import math
import time
from collections.abc import Iterator

from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction
from django.utils.translation import gettext_lazy as _

from station.errors import UserError

CACHE_ALIAS = "login"


class LoginLocked(UserError):
    """Too many failed logins for the username or from the address: refused without a password check."""

    def __init__(self, wait_seconds: int):
        super().__init__("login_locked", _("Too many failed logins for this account or from this address; try again "
                                           "in %(wait_seconds)d seconds."), {"wait_seconds": wait_seconds})
        self.wait_seconds = wait_seconds


def client_address(request) -> str | None:
    """The address the connection came from (behind a proxy, the one Daphne was told by the proxy headers).

    An IPv6 address counts by its /64: one host holds all of them, and each would get guesses of its own.
    """
    address = request.META.get("REMOTE_ADDR") or None
    try:
        parsed = ipaddress.ip_address(address) if address else None
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False)) if parsed and parsed.version == 6 else address


@contextlib.contextmanager
def login_attempt(*, username: str, address: str | None) -> Iterator[None]:
    """Check a password in the block: it counts as a failure unless the block ends without an exception."""
    limits = {f"user:{hashlib.sha256(username.encode()).hexdigest()}": settings.LOGIN_MAX_FAILURES}
    if address:
        limits[f"address:{address}"] = settings.LOGIN_MAX_FAILURES_PER_ADDRESS
    _count_failure(limits)
    yield
    _take_back(list(limits))


def _count_failure(limits: dict[str, int]) -> None:
    cache, now = caches[CACHE_ALIAS], time.time()
    lockout, keys = settings.LOGIN_LOCKOUT_SECONDS, list(limits)
    with _counts_locked(keys):
        counts = cache.get_many(keys)  # key → (failures, forgotten at)
        waits = [until - now for key, (failures, until) in counts.items() if failures >= limits[key] and until > now]
        if waits:
            raise LoginLocked(math.ceil(max(waits)))
        cache.set_many({key: (counts.get(key, (0, 0))[0] + 1, now + lockout) for key in keys}, timeout=lockout)


def _take_back(keys: list[str]) -> None:
    cache, now = caches[CACHE_ALIAS], time.time()
    with _counts_locked(keys):
        for key, (failures, until) in cache.get_many(keys).items():
            if failures > 1:
                cache.set(key, (failures - 1, until), timeout=max(until - now, 1))
            else:
                cache.delete(key)


@contextlib.contextmanager
def _counts_locked(keys: list[str]) -> Iterator[None]:
    """Hold the keys' counts against every other process until they are written (PostgreSQL advisory locks).

    The single-key (bigint) lock space, apart from station.locks' two-key locks; sorted, so two
    attempts on the same keys can't deadlock.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            for key in sorted(keys):
                lock_id = int.from_bytes(hashlib.sha256(f"login:{key}".encode()).digest()[:8], "big", signed=True)
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])
        yield
