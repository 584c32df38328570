import logging

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme

from station.errors import UserError

logger = logging.getLogger(__name__)


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
