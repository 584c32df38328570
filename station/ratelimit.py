"""Limits per client address, in this process, for what anyone may read without signing in (``playout.public``).

A web process counts its own clients: with N processes behind one socket, an address gets up to N times the limit,
which still bounds what one client costs the station. Behind a reverse proxy, Daphne's ``--proxy-headers`` makes the
client's address the one the proxy names.
"""

import threading
import time
from collections import defaultdict, deque

from django.conf import settings
from django.http import JsonResponse
from django.utils.translation import gettext as _

WINDOW_SECONDS = 60.0


class AddressLimits:
    """Requests per address in a rolling window of WINDOW_SECONDS, and streams open per address."""

    def __init__(self, *, requests_per_window: int, streams: int):
        if requests_per_window < 1 or streams < 1:
            raise ValueError("a limit of requests or streams is 1 at least")
        self.requests_per_window, self.streams = requests_per_window, streams
        self.lock = threading.Lock()
        self.recent: dict[str, deque[float]] = defaultdict(deque)  # address → the times of its requests in the window
        self.open: dict[str, int] = defaultdict(int)
        self.pruned_at = time.monotonic()

    def allow_request(self, address: str) -> float:
        """0 if ``address`` may make a request now (it is counted), else the seconds until it may."""
        now = time.monotonic()
        with self.lock:
            if now - self.pruned_at > WINDOW_SECONDS:  # addresses that went quiet are forgotten
                for quiet in [a for a, times in self.recent.items() if now - times[-1] > WINDOW_SECONDS]:
                    del self.recent[quiet]
                self.pruned_at = now
            times = self.recent[address]
            while times and now - times[0] > WINDOW_SECONDS:
                times.popleft()
            if len(times) >= self.requests_per_window:
                return WINDOW_SECONDS - (now - times[0])
            times.append(now)
            return 0.0

    def open_stream(self, address: str) -> bool:
        """Whether ``address`` may open one more stream (then counted until ``close_stream``)."""
        with self.lock:
            if self.open[address] >= self.streams:
                return False
            self.open[address] += 1
            return True

    def close_stream(self, address: str) -> None:
        with self.lock:
            self.open[address] -= 1
            if not self.open[address]:
                del self.open[address]


_limits: dict[tuple[int, int], AddressLimits] = {}


def public_limits() -> AddressLimits:
    """This process's limits for the public addresses (now-playing, calendars), as the settings say now."""
    key = (settings.PUBLIC_REQUESTS_PER_MINUTE, settings.PUBLIC_STREAMS_PER_ADDRESS)
    if key not in _limits:
        _limits[key] = AddressLimits(requests_per_window=key[0], streams=key[1])
    return _limits[key]


def too_many_requests(request) -> JsonResponse | None:
    """A 429 with ``Retry-After`` for a request from an address over the public limit, else None (it is counted)."""
    retry_in = public_limits().allow_request(request.META.get("REMOTE_ADDR", ""))
    if not retry_in:
        return None
    response = JsonResponse({"detail": _("Too many requests from your address: try again in %(seconds)d s.")
                             % {"seconds": retry_in + 1}}, status=429)
    response["Retry-After"] = str(int(retry_in) + 1)
    return response
