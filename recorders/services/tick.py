"""The tick's safety net: what agents did not do (unclaimed starts, abandoned recordings, series, stale assets)."""

import contextlib
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Case, Q, TextField, Value, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ingest.models import MediaAsset
from recorders.models import RecorderSchedule, RecordingSession
from recorders.services.recording import (lease_take, recording_finalize, recording_interrupted,
                                          recording_last_data_at, schedule_fail)
from recorders.services.schedules import schedule_queue_next, schedules_announce
from station.models import Alert, Node
from station.recurrence import Recurrence
from station.services import alert_raise, alerts_raise

logger = logging.getLogger(__name__)
Status = RecorderSchedule.Status


def housekeeping(*, owner: str, now: datetime | None = None) -> dict:
    """One pass of the safety net; returns how many rows each step touched."""
    now = now or timezone.now()
    return {
        "unclaimed_starts": _fail_unclaimed_starts(now),
        "abandoned_recordings": _finish_abandoned_recordings(owner, now),
        "series_continued": _continue_series(now),
        "stale_live_assets": _expire_live_assets(now),
    }


def _each_alone(schedules, handle, *, doing: str) -> int:
    """Handle windows one at a time: one that fails is failed with its reason, the rest go on.

    Inside a transaction each window gets a savepoint, so one that fails leaves the others' work
    usable; outside one, ``handle`` opens its own. It returns False for a window it left alone;
    the count is of the others.
    """
    handled = 0
    for schedule in schedules:
        try:
            with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
                handled += handle(schedule) is not False
        except DatabaseError:
            raise  # the database, not the window (a deadlock, a lost connection): the next pass tries again
        except Exception as error:
            logger.exception("housekeeping: could not %s %s", doing, schedule)
            reason = _("The station could not %(doing)s it: %(reason)s") % {"doing": doing, "reason": error}
            schedule.refresh_from_db()
            if schedule.status in RecorderSchedule.ACTIVE_STATUSES:
                schedule_fail(schedule=schedule, reason=str(reason))  # else it would fail the same way every pass
            else:
                alert_raise(studio=schedule.recorder.studio_id, code="housekeeping_failed", subject=schedule.name,
                            severity=Alert.Severity.CRITICAL, message=reason)
    return handled


def _fail_unclaimed_starts(now: datetime) -> int:
    """Windows no agent claimed within the grace period: missed if over, failed if still open; never silent.

    An outage leaves many at once, and they are handled together: one statement per outcome, one
    alert per recorder (the same for the rest of the outage: an open alert is not repeated), the
    desk told of every window in one write per studio.
    """
    grace = timedelta(seconds=settings.RECORDER_START_GRACE_SECONDS)
    with transaction.atomic():
        late = list(
            RecorderSchedule.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Status.PENDING, start_at__lt=now - grace)
            .select_related("recorder__studio", "recorder__node").order_by("recorder_id", "start_at")
        )
        if not late:
            return 0
        online = [node.name for node in Node.objects.filter(enabled=True)
                  if node.is_online(now) and Node.Capability.RECORD in node.capabilities]
        by_recorder = {}
        for schedule in late:
            by_recorder.setdefault(schedule.recorder, []).append(schedule)
        reasons = {recorder: _reason_unclaimed(recorder, online, now) for recorder in by_recorder}
        for outcome, missed in ((Status.MISSED, True), (Status.FAILED, False)):
            moving = [schedule for schedule in late if (schedule.record_until <= now) == missed]
            if moving:
                message = Case(*(When(recorder_id=recorder.pk, then=Value(reasons[recorder])) for recorder in
                                 {schedule.recorder for schedule in moving}), output_field=TextField())
                RecorderSchedule.objects.filter(pk__in=[schedule.pk for schedule in moving]).move_to(
                    outcome, error_message=message)
            for schedule in moving:
                schedule.status, schedule.error_message = outcome, reasons[schedule.recorder]
        by_studio = {}
        for recorder in by_recorder:
            by_studio.setdefault(recorder.studio_id, []).append(recorder)
        for studio_id, recorders in by_studio.items():
            alerts_raise(studio_id=studio_id, alerts=[Alert(
                code="recording_missed", subject=recorder.name, severity=Alert.Severity.CRITICAL,
                message=_("%(recorder)s did not record: %(reason)s") % {"recorder": recorder.name,
                                                                        "reason": reasons[recorder]},
            ) for recorder in recorders])
            schedules_announce([schedule for recorder in recorders for schedule in by_recorder[recorder]])
        series = [schedule for schedule in late if schedule.recurrence != Recurrence.NONE]
        _each_alone(series, lambda schedule: schedule_queue_next(schedule=schedule), doing=_("queue the next window of"))
        return len(late)


def _reason_unclaimed(recorder, online: list[str], now: datetime) -> str:
    """Why its windows were not started; if even that can't be told, why not (its windows still fail, with it)."""
    try:
        return _why_unclaimed(recorder, online, now)
    except Exception as error:
        logger.exception("housekeeping: could not tell why %s's windows were not started", recorder)
        return str(_("The station could not report the unstarted window: %(reason)s") % {"reason": error})


def _why_unclaimed(recorder, online: list[str], now: datetime) -> str:
    node = recorder.node
    if node is None:
        where = (_("agents %(nodes)s were online but none started it") % {"nodes": ", ".join(online)}) if online else _(
            "no node that can record was online")
    elif not node.is_online(now):
        seen = node.last_heartbeat_at.isoformat() if node.last_heartbeat_at else _("never")
        where = _("node %(node)s is offline (last heartbeat: %(seen)s)") % {"node": node, "seen": seen}
    else:
        where = _("node %(node)s is online but did not start it") % {"node": node}
    return str(_("No agent started this recording within %(grace)s s of its start: %(where)s.") % {
        "grace": int(settings.RECORDER_START_GRACE_SECONDS), "where": where})


def _finish_abandoned_recordings(owner: str, now: datetime) -> int:
    """Recordings whose agent died and whose window closed before another agent took over."""
    candidates = RecorderSchedule.objects.filter(
        Q(status__in=[Status.STARTING, Status.RUNNING, Status.STOPPING]) | Q(status=Status.CANCELLED, session__status=RecordingSession.Status.RECORDING),
        lease_expires_at__lt=now,
    ).select_related("recorder__studio")

    def finish(schedule: RecorderSchedule) -> bool:
        if schedule.status in (Status.STARTING, Status.RUNNING) and schedule.record_until > now:
            return False  # still open: a live agent takes it over
        last_seen = recording_last_data_at(schedule)
        with transaction.atomic():
            if not lease_take(schedule, owner=owner, now=now):
                return False
            if schedule.status in (Status.STARTING, Status.RUNNING):
                schedule.move_to(Status.STOPPING, where={"claimed_by": owner})
            schedule.refresh_from_db()
            recorded = RecordingSession.objects.filter(schedule=schedule).exists()
            if recorded:
                recording_interrupted(schedule=schedule, epoch=schedule.lease_epoch, since=last_seen,
                                      reason=_("Its agent stopped; the window was finished without it."))
            else:
                schedule_fail(schedule=schedule, epoch=schedule.lease_epoch,
                              reason=str(_("Its agent stopped before recording anything.")))
        if recorded:  # the file work, after the claim is committed
            recording_finalize(schedule=schedule, stopped_at=min(now, schedule.record_until),
                               epoch=schedule.lease_epoch)
        return True

    return _each_alone(candidates, finish, doing=_("finish the abandoned recording"))


def _continue_series(now: datetime) -> int:
    """Recurring windows that ended without their next window queued (e.g. queued while it overlapped)."""
    ended = RecorderSchedule.objects.exclude(status=Status.PENDING).exclude(recurrence=Recurrence.NONE).filter(
        next_in_series__isnull=True, end_at__gt=now - timedelta(days=1)
    ).select_related("recorder__studio")
    return _each_alone(ended, lambda schedule: schedule_queue_next(schedule=schedule) is not None,
                       doing=_("queue the next window of"))


def _expire_live_assets(now: datetime) -> int:
    """A live asset nobody has touched for LIVE_ASSET_TIMEOUT_MINUTES lost its recorder."""
    cutoff = now - timedelta(minutes=settings.LIVE_ASSET_TIMEOUT_MINUTES)
    return MediaAsset.objects.filter(status=MediaAsset.Status.LIVE, updated_at__lt=cutoff).move_to(
        MediaAsset.Status.ERROR,
        error_message=str(_("Its recorder stopped reporting; the recording is incomplete.")),
        updated_at=now,
    )
