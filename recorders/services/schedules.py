"""What people do to recorder schedules (cancel, start now, stop now), and a series' next window."""

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from recorders.events import schedule_row
from recorders.models import RecorderSchedule
from station import events
from station.errors import UserError, constraint_errors
from station.models import EventType
from station.services import alert_raise

logger = logging.getLogger(__name__)
Status = RecorderSchedule.Status


def schedule_announce(schedule: RecorderSchedule) -> None:
    """Tell the studio's dashboards and webhooks the window's state."""
    schedules_announce([schedule])


def schedules_announce(schedules: list[RecorderSchedule]) -> None:
    """Tell the dashboards and webhooks of one studio the states of its windows, in one write."""
    events.publish_many(studio_id=schedules[0].recorder.studio_id, type=EventType.SCHEDULE,
                        payloads=[schedule_row(schedule) for schedule in schedules])


# --- Actions people take -----------------------------------------------------------------------


@transaction.atomic
def schedule_cancel(*, schedule: RecorderSchedule) -> RecorderSchedule:
    """Call a window off; a recording in progress is stopped by its agent. The series goes on."""
    schedule.move_to(Status.CANCELLED)
    schedule_announce(schedule)
    schedule_queue_next(schedule=schedule)
    return schedule


@transaction.atomic
def schedule_start_now(*, schedule: RecorderSchedule) -> RecorderSchedule:
    """Open a pending window now instead of at its start time."""
    now = timezone.now()
    if schedule.end_at <= now:
        raise UserError(
            "window_over", _("%(schedule)s has already ended; it cannot start now."), {"schedule": schedule.name}
        )
    with constraint_errors():
        moved = RecorderSchedule.objects.filter(pk=schedule.pk, status=Status.PENDING, start_at__gt=now).update(
            start_at=now, updated_at=now
        )
    if not moved:
        schedule.refresh_from_db()
        if schedule.status == Status.PENDING:
            return schedule  # its window is already open: the agent is starting it
        raise _refused(schedule, "not_pending", _("%(schedule)s is %(status)s; only a pending window can start now."))
    schedule.refresh_from_db()
    schedule_announce(schedule)
    return schedule


@transaction.atomic
def schedule_stop_now(*, schedule: RecorderSchedule) -> RecorderSchedule:
    """Close a recording's window now; its agent stops ffmpeg and completes it."""
    now = timezone.now()
    moved = RecorderSchedule.objects.filter(
        pk=schedule.pk, status__in=[Status.STARTING, Status.RUNNING], start_at__lt=now, end_at__gt=now
    ).update(end_at=now, updated_at=now)
    if not moved:
        schedule.refresh_from_db()
        raise _refused(schedule, "not_recording", _("%(schedule)s is %(status)s, not recording; cancel it instead."))
    schedule.refresh_from_db()
    schedule_announce(schedule)
    return schedule


def _refused(schedule: RecorderSchedule, code: str, message) -> UserError:
    """Why a window as it is now can't do what was asked (the message names it and its status)."""
    return UserError(code, message, {"schedule": schedule.name, "status": schedule.get_status_display()})


# --- Series -------------------------------------------------------------------------------------


def schedule_queue_next(*, schedule: RecorderSchedule) -> RecorderSchedule | None:
    """Queue the series' next window after this one (once, whoever asks); None for a one-off."""
    window = schedule.following_window()
    if window is None:
        return None
    try:
        with transaction.atomic():
            following, _created = RecorderSchedule.objects.get_or_create(
                previous=schedule,
                defaults={
                    "recorder_id": schedule.recorder_id,
                    "name": schedule.name,
                    "start_at": window[0],
                    "end_at": window[1],
                    "recurrence": schedule.recurrence,
                    "rrule": schedule.rrule,
                    "skip_dates": schedule.skip_dates,
                    "series_start_at": schedule.series_start_at,
                    "series_end_at": schedule.series_end_at,
                },
            )
    except IntegrityError as error:
        alert_raise(
            studio=schedule.recorder.studio_id,
            code="next_window_not_queued",
            subject=schedule.name,
            message=_("The next window of %(schedule)s (%(start)s) overlaps another window on %(recorder)s and was not queued.")
            % {"schedule": schedule.name, "start": window[0].isoformat(), "recorder": schedule.recorder},
        )
        logger.info("next window not queued: %s", error)
        return None
    return following
