from django.views.decorators.http import require_GET

from recorders.calendars import recorder_schedule_events
from recorders.models import Recorder
from station import calendars


@require_GET
def recorder_calendar(request, slug: str, recorder_id: int):
    """A recorder's windows as a calendar feed (station.calendars), readable as its studio's feeds are."""
    return calendars.serve_part(request, slug, Recorder, recorder_schedule_events, pk=recorder_id)
