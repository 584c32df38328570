"""Throttles whose rates come from settings (API_THROTTLE_ANON, API_THROTTLE_USER) at each request."""

from rest_framework import throttling
from rest_framework.settings import api_settings


class _RatesFromSettings:
    # DRF reads the rates once at import; reading them per request lets tests and benches set them.
    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class AnonymousThrottle(_RatesFromSettings, throttling.AnonRateThrottle):
    """Requests without credentials, per client address (``API_THROTTLE_ANON``)."""


class UserThrottle(_RatesFromSettings, throttling.UserRateThrottle):
    """Requests per user (``API_THROTTLE_USER``)."""
