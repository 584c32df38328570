"""Throttles whose rates come from settings (API_THROTTLE_ANON, API_THROTTLE_USER) at each request, and the
failed-login lockout's answer."""

from rest_framework import exceptions, throttling
from rest_framework.settings import api_settings

from station.login_throttle import LoginLocked


class _RatesFromSettings:
    # DRF reads the rates once at import; reading them per request lets tests and benches set them.
    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class AnonymousThrottle(_RatesFromSettings, throttling.AnonRateThrottle):
    """Requests without credentials, per client address (``API_THROTTLE_ANON``)."""


class UserThrottle(_RatesFromSettings, throttling.UserRateThrottle):
    """Requests per user (``API_THROTTLE_USER``)."""


class LoginThrottled(exceptions.Throttled):
    """429 for a login refused by the failed-login limiter (station.login_throttle), with its own message and code."""

    def __init__(self, locked: LoginLocked):
        super().__init__(detail=str(locked), code=locked.code)  # no wait here: the message already says it
        self.wait = locked.wait_seconds  # Retry-After and params.wait_seconds
