"""A studio's recording windows in its calendar feeds (station.calendars).

A series is queued one window at a time, each after the one before (``previous``): its newest window carries the
series as it stands (first window, rule, skip dates), and is its event; a one-off window is an event of its own.
Cancelled windows are left out.
"""

import icalendar

from recorders.models import RecorderSchedule
from station.calendars import Source, recent, uid, window_event
from station.recurrence import Recurrence


def schedule_events(schedules) -> list[icalendar.Event]:
    newest = (recent(schedules).exclude(status=RecorderSchedule.Status.CANCELLED).filter(next_in_series__isnull=True)
              .select_related("recorder__studio"))
    return [window_event(schedule, uid=uid("recording", _series_key(schedule)),
                         summary=schedule.name, location=schedule.recorder.name, zone=schedule.recorder.studio.zone)
            for schedule in newest]


def _series_key(schedule: RecorderSchedule):
    """What stays the same along a series' windows: its recorder and first window."""
    if schedule.recurrence == Recurrence.NONE:
        return schedule.pk
    return f"{schedule.recorder_id}-{int(schedule.series_start_at.timestamp())}"


SOURCE = Source(windows=RecorderSchedule, part="recorder", events=schedule_events, url_name="calendar-recorder",
                key=lambda recorder: recorder.pk)
