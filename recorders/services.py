"""State changes of recorder schedules. Each is atomic and happens once, whoever asks."""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from recorders.models import RecorderSchedule
from station import events
from station.errors import UserError, constraint_errors

Status = RecorderSchedule.Status


def _announce(schedule: RecorderSchedule) -> None:
    events.publish(
        studio_id=schedule.recorder.studio_id,
        type="recorders.schedule",
        payload={
            "id": schedule.pk,
            "recorder": schedule.recorder_id,
            "name": schedule.name,
            "status": schedule.status,
            "start_at": schedule.start_at.isoformat(),
            "end_at": schedule.end_at.isoformat(),
            "error_message": schedule.error_message,
        },
    )


@transaction.atomic
def schedule_cancel(*, schedule: RecorderSchedule) -> RecorderSchedule:
    """Call a window off; a recording in progress is stopped by its agent."""
    schedule.move_to(Status.CANCELLED)
    _announce(schedule)
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
        raise UserError(
            "not_pending",
            _("%(schedule)s is %(status)s; only a pending window can start now."),
            {"schedule": schedule.name, "status": schedule.get_status_display()},
        )
    schedule.refresh_from_db()
    _announce(schedule)
    return schedule


@transaction.atomic
def schedule_stop_now(*, schedule: RecorderSchedule) -> RecorderSchedule:
    """Close a recording's window now; its agent stops ffmpeg and completes it."""
    now = timezone.now()
    moved = RecorderSchedule.objects.filter(
        pk=schedule.pk, status__in=[Status.STARTING, Status.RUNNING], end_at__gt=now
    ).update(end_at=now, updated_at=now)
    if not moved:
        schedule.refresh_from_db()
        raise UserError(
            "not_recording",
            _("%(schedule)s is %(status)s, not recording; cancel it instead."),
            {"schedule": schedule.name, "status": schedule.get_status_display()},
        )
    schedule.refresh_from_db()
    _announce(schedule)
    return schedule
