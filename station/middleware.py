import logging
import time
import zoneinfo
from importlib import import_module

from channels.middleware import BaseMiddleware
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme

from django.utils import timezone

from station import metrics
from station.errors import UserError
from station.models import Studio

logger = logging.getLogger(__name__)


class RequestMetricsMiddleware:
    """Count and time every request by method, URL pattern and status (station.metrics); first, so it times them all."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        began = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        metrics.request_answered(method=request.method, route=match.route if match else "",
                                 status=response.status_code, seconds=time.perf_counter() - began)
        return response


class UserErrorMiddleware:
    """Show a UserError escaping an admin view as a message on the page it came from, never a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, UserError) or not request.path.startswith("/admin/"):
            return None
        logger.info("user error %s on %s", exception.code, request.path, exc_info=exception.inner)
        messages.error(request, str(exception))
        back = request.META.get("HTTP_REFERER") or request.path
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = request.path
        return HttpResponseRedirect(back)


class StudioTimeZoneMiddleware:
    """Show and read times in the zone of the user's studio (the first by name), UTC otherwise."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone_name = None
        # The API reads and answers in UTC (a time without an offset is UTC), whoever asks.
        if request.user.is_authenticated and not request.path.startswith("/api/"):
            zone_name = (
                Studio.objects.filter(memberships__user=request.user).order_by("name").values_list("time_zone", flat=True).first()
            )
        if zone_name:
            timezone.activate(zoneinfo.ZoneInfo(zone_name))
        else:
            timezone.deactivate()
        return self.get_response(request)


class SocketSessionMiddleware(BaseMiddleware):
    """The cookie's session in ``scope["session"]``, read when asked (channels' AuthMiddleware reads the user from it).

    Unlike channels' SessionMiddleware it leaves ``send`` alone: a websocket never saves its session,
    and that middleware looks the session over on every frame sent, a tenth to a fifth of the CPU
    an event costs per dashboard (bench/dashboard_fanout.py).
    """

    async def __call__(self, scope, receive, send):
        session = import_module(settings.SESSION_ENGINE).SessionStore(scope["cookies"].get(settings.SESSION_COOKIE_NAME))
        return await super().__call__({**scope, "session": session}, receive, send)
