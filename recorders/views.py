from django.views.decorators.http import require_GET

from recorders.calendars import SOURCE as CALENDARS
from station import calendars


@require_GET
def recorder_calendar(request, slug: str, recorder_id: int):
    """A recorder's windows as a calendar feed (station.calendars), readable as its studio's feeds are."""
    return calendars.serve_part(request, slug, CALENDARS, pk=recorder_id)
