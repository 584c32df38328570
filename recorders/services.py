"""State changes of recorder schedules and their recordings.

Each change is a compare-and-set on the schedule's status (and, for agents, its
lease), so it happens once however many agents and tick replicas race for it.
File work (joining parts, probing) happens outside transactions.
"""

import contextlib
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ingest import media
from ingest.models import MediaAsset
from ingest.services import publication_queue
from recorders import engine
from recorders.models import RecorderSchedule, RecordingSession
from recorders.selectors import lease_deadline
from station import dashboard, events, locks
from station.errors import UserError, constraint_errors
from station.models import Alert, Node
from station.recurrence import Recurrence
from station.services import alert_raise

logger = logging.getLogger(__name__)
Status = RecorderSchedule.Status


def _announce(schedule: RecorderSchedule) -> None:
    events.publish(studio_id=schedule.recorder.studio_id, type="recorders.schedule", payload=dashboard.schedule_row(schedule))


# --- Actions people take -----------------------------------------------------------------------


@transaction.atomic
def schedule_cancel(*, schedule: RecorderSchedule) -> RecorderSchedule:
    """Call a window off; a recording in progress is stopped by its agent. The series goes on."""
    schedule.move_to(Status.CANCELLED)
    _announce(schedule)
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
        pk=schedule.pk, status__in=[Status.STARTING, Status.RUNNING], start_at__lt=now, end_at__gt=now
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


# --- What agents do -----------------------------------------------------------------------------


def recording_directory(schedule: RecorderSchedule) -> Path:
    """Where a window's audio goes: named by ids, which never change (a studio's slug can, mid-recording)."""
    return Path(settings.MEDIA_ROOT) / "recordings" / f"studio-{schedule.recorder.studio_id}" / f"schedule-{schedule.pk}"


@transaction.atomic
def schedule_claim(*, schedule_id: int, owner: str, node, now: datetime) -> RecorderSchedule | None:
    """Claim a pending window for recording; None if someone else got there first."""
    claimed = RecorderSchedule.objects.filter(pk=schedule_id).move_to(
        Status.STARTING, claimed_by=owner, lease_expires_at=lease_deadline(now), updated_at=now
    )
    if not claimed:
        return None
    schedule = RecorderSchedule.objects.select_related("recorder__studio").get(pk=schedule_id)
    asset = MediaAsset.objects.create(
        studio_id=schedule.recorder.studio_id,
        title=f"{schedule.name} {timezone.localtime(schedule.start_at, schedule.studio_zone()):%Y-%m-%d %H:%M}",
        origin=MediaAsset.Origin.RECORDING,
        status=MediaAsset.Status.PENDING,
    )
    RecordingSession.objects.create(schedule=schedule, recorder_id=schedule.recorder_id, node=node, started_at=now, asset=asset)
    _announce(schedule)
    schedule_queue_next(schedule=schedule)
    return schedule


@transaction.atomic
def schedule_take_over(*, schedule: RecorderSchedule, owner: str, node, now: datetime) -> bool:
    """Take a recording whose agent stopped renewing its lease; True if this owner got it."""
    taken = _lease_take(schedule, owner=owner, now=now)
    if taken:
        schedule.claimed_by = owner
        RecordingSession.objects.filter(schedule=schedule).update(node=node)
        logger.info("%s took over %s", owner, schedule)
    return taken


def _lease_take(schedule: RecorderSchedule, *, owner: str, now: datetime) -> bool:
    """Take the lease its holder stopped renewing, if the window is still as ``schedule`` was read; its status stays."""
    return bool(RecorderSchedule.objects.filter(
        pk=schedule.pk, status=schedule.status, claimed_by=schedule.claimed_by, lease_expires_at__lt=now
    ).update(claimed_by=owner, lease_expires_at=lease_deadline(now), updated_at=now))


@transaction.atomic
def recording_started(*, schedule: RecorderSchedule, now: datetime, data_since: datetime) -> None:
    """ffmpeg produced its first data for a run begun at ``data_since``: the window runs, its asset is live.

    A gap in the recording ends at ``data_since``: ffmpeg keeps what it reads while
    it probes the source, so its audio starts when it started, not when we noticed.
    """
    if schedule.status == Status.STARTING:
        schedule.move_to(Status.RUNNING)
        _announce(schedule)
    session = RecordingSession.objects.select_for_update().get(schedule=schedule)
    if session.gaps and session.gaps[-1][1] is None:
        session.gaps[-1][1] = data_since.isoformat()
        session.save(update_fields=["gaps", "updated_at"])
    MediaAsset.objects.filter(pk=session.asset_id).move_to(MediaAsset.Status.LIVE, updated_at=now)


@transaction.atomic
def recording_interrupted(*, schedule: RecorderSchedule, since: datetime) -> None:
    """Note the start of a gap in the recording (ffmpeg died, or its agent did)."""
    session = RecordingSession.objects.select_for_update().get(schedule=schedule)
    if not session.gaps or session.gaps[-1][1] is not None:
        session.gaps.append([since.isoformat(), None])
        session.save(update_fields=["gaps", "updated_at"])


@transaction.atomic
def schedule_fail(*, schedule: RecorderSchedule, reason: str) -> None:
    """The recording could not be made: say why, once, and tell the desk."""
    schedule.move_to(Status.FAILED, error_message=reason[:2000])
    now = timezone.now()
    session = RecordingSession.objects.filter(schedule=schedule).first()
    if session:
        RecordingSession.objects.filter(pk=session.pk).move_to(
            RecordingSession.Status.FAILED, ended_at=now, error_message=reason[:2000], updated_at=now
        )
        MediaAsset.objects.filter(pk=session.asset_id).exclude(status=MediaAsset.Status.READY).move_to(
            MediaAsset.Status.ERROR, error_message=reason[:2000], updated_at=now
        )
    alert_raise(
        studio=schedule.recorder.studio_id,
        code="recording_failed",
        subject=schedule.name,
        severity=Alert.Severity.CRITICAL,
        message=_("Recording %(schedule)s failed: %(reason)s") % {"schedule": schedule.name, "reason": reason},
    )
    _announce(schedule)


def leases_renew(*, owner: str, now: datetime) -> set[int]:
    """Extend this owner's leases; return the schedules it still holds (others were taken over or ended)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {RecorderSchedule._meta.db_table} SET lease_expires_at = %s "
            "WHERE claimed_by = %s AND status = ANY(%s) RETURNING id",
            [lease_deadline(now), owner, [Status.STARTING, Status.RUNNING, Status.STOPPING]],
        )
        held = {row[0] for row in cursor.fetchall()}
    MediaAsset.objects.filter(recording_session__schedule_id__in=held, status=MediaAsset.Status.LIVE).update(updated_at=now)
    return held


def recording_last_data_at(schedule: RecorderSchedule) -> datetime:
    """When the recorded audio ends: the last run's start plus what it recorded, else the last lease renewal."""
    ended = engine.last_run_end(recording_directory(schedule))
    if ended is not None:
        return datetime.fromtimestamp(ended, tz=UTC)
    renewed = (schedule.lease_expires_at or timezone.now()) - timedelta(seconds=settings.AGENT_LEASE_SECONDS)
    return max(renewed, schedule.start_at)


def schedule_begin_stop(*, schedule: RecorderSchedule, owner: str, now: datetime) -> bool:
    """Claim the stop of a starting or running window (→ stopping); True if this owner does it."""
    return bool(
        RecorderSchedule.objects.filter(pk=schedule.pk, claimed_by=owner)
        .move_to(Status.STOPPING, lease_expires_at=lease_deadline(now), updated_at=now)
    )


def recording_finalize(*, schedule: RecorderSchedule, stopped_at: datetime) -> RecorderSchedule:
    """Join what was recorded into the window's asset and close its session, once.

    A stopping window becomes completed; a cancelled one keeps its status but its
    recording up to the cancel is kept; with nothing recorded the window fails.
    An agent and a tick that both reach here (the agent was slow, its lease ran
    out) are serialised by the recording lock, and the second finds it done. The
    file work (joining, probing, hashing) holds no transaction open: the result is
    written by a short compare-and-set.
    """
    with locks.recording_lock(schedule.pk):
        schedule.refresh_from_db()
        session = RecordingSession.objects.get(schedule=schedule)
        if session.status != RecordingSession.Status.RECORDING or schedule.status not in (Status.STOPPING, Status.CANCELLED):
            return schedule
        directory = recording_directory(schedule)
        parts = engine.recording_parts(directory)
        finished = sorted(directory.glob("recording.*")) if directory.exists() else []
        if not parts and not finished:
            if schedule.status != Status.CANCELLED:
                schedule_fail(schedule=schedule, reason=str(_("Nothing was recorded: ffmpeg wrote no data.")))
            else:
                RecordingSession.objects.filter(pk=session.pk).move_to(RecordingSession.Status.COMPLETED, ended_at=stopped_at)
            return schedule
        if session.asset_id is None:  # deleted around the model, which keeps it while recording
            schedule_fail(schedule=schedule, reason=str(_("Its media asset was deleted while it recorded.")))
            return schedule
        target = finished[0] if finished and not parts else directory / f"recording{parts[0].suffix}"
        try:
            if parts:
                engine.join_parts(parts, target)
            probed = media.probe(target)
            checksum = media.sha256_file(target)
        except UserError as error:
            schedule_fail(schedule=schedule, reason=str(error))
            return schedule
        _recording_complete(schedule, session, target, probed, checksum, stopped_at)
    return schedule


@transaction.atomic
def _recording_complete(schedule, session, target: Path, probed, checksum: str, stopped_at: datetime) -> None:
    MediaAsset.objects.filter(pk=session.asset_id).move_to(
        MediaAsset.Status.READY,
        file=str(target.relative_to(settings.MEDIA_ROOT)),
        checksum=checksum,
        size_bytes=target.stat().st_size,
        duration_seconds=probed.duration_seconds,
        format_name=probed.format_name,
        updated_at=stopped_at,
    )
    publication_queue(asset=MediaAsset.objects.get(pk=session.asset_id), quiet=True)
    gaps = [[start, end or stopped_at.isoformat()] for start, end in session.gaps]
    RecordingSession.objects.filter(pk=session.pk).move_to(
        RecordingSession.Status.COMPLETED, ended_at=stopped_at, gaps=gaps, updated_at=stopped_at
    )
    if schedule.status == Status.STOPPING:
        schedule.move_to(Status.COMPLETED, lease_expires_at=None)
        _announce(schedule)


# --- The tick: housekeeping for what agents did not do ------------------------------------------


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
    """Windows no agent claimed within the grace period: failed (or missed if over), never silent."""
    grace = timedelta(seconds=settings.RECORDER_START_GRACE_SECONDS)

    def report(schedule: RecorderSchedule) -> None:
        reason = _why_unclaimed(schedule, now)
        if schedule.record_until <= now:
            schedule.move_to(Status.MISSED, error_message=reason)
            alert_raise(studio=schedule.recorder.studio_id, code="recording_missed", subject=schedule.name,
                        severity=Alert.Severity.CRITICAL, message=reason)
            _announce(schedule)
        else:
            schedule_fail(schedule=schedule, reason=reason)
        schedule_queue_next(schedule=schedule)

    with transaction.atomic():
        late = list(
            RecorderSchedule.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Status.PENDING, start_at__lt=now - grace)
            .select_related("recorder__studio", "recorder__node")
        )
        return _each_alone(late, report, doing=_("report the unstarted window"))


def _why_unclaimed(schedule: RecorderSchedule, now: datetime) -> str:
    node = schedule.recorder.node
    if node is None:
        online = [n.name for n in Node.objects.filter(enabled=True) if n.is_online(now) and Node.Capability.RECORD in n.capabilities]
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
            if not _lease_take(schedule, owner=owner, now=now):
                return False
            if schedule.status in (Status.STARTING, Status.RUNNING):
                schedule.move_to(Status.STOPPING, where={"claimed_by": owner})
            schedule.refresh_from_db()
            recorded = RecordingSession.objects.filter(schedule=schedule).exists()
            if recorded:
                recording_interrupted(schedule=schedule, since=last_seen)
            else:
                schedule_fail(schedule=schedule, reason=str(_("Its agent stopped before recording anything.")))
        if recorded:  # the file work, after the claim is committed
            recording_finalize(schedule=schedule, stopped_at=min(now, schedule.record_until))
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
