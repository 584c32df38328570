"""What agents do with a window: claim it, record it, hand it over, stop it, finish it.

Each change is a compare-and-set on the schedule's status (and, for agents, its lease), so it
happens once however many agents and tick replicas race for it. An agent's writes carry the
lease epoch it was given (``epoch``) and are refused (``station.fencing.Fenced``) once another
took the window. File work (joining parts, probing, hashing) happens outside transactions.
"""

import dataclasses
import logging
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ingest import media
from ingest.models import MediaAsset
from ingest.services import publication_queue
from recorders import engine
from recorders.models import RecorderSchedule, RecordingSession
from recorders.selectors import lease_deadline
from recorders.services.schedules import schedule_announce, schedule_queue_next
from recorders.events import schedule_row
from station import events, fencing, locks, metrics
from station.errors import UserError
from station.models import Alert, EventType
from station.services import alert_raise, alerts_clear

logger = logging.getLogger(__name__)
Status = RecorderSchedule.Status


def recording_directory(schedule: RecorderSchedule) -> Path:
    """Where a window's audio goes: named by ids, which never change (a studio's slug can, mid-recording)."""
    return Path(settings.MEDIA_ROOT) / "recordings" / f"studio-{schedule.recorder.studio_id}" / f"schedule-{schedule.pk}"


@transaction.atomic
def schedule_claim(*, schedule_id: int, owner: str, node, now: datetime) -> RecorderSchedule | None:
    """Claim a pending window for recording (its lease epoch raised); None if someone else got there first."""
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
    schedule_announce(schedule)
    schedule_queue_next(schedule=schedule)
    return schedule


@transaction.atomic
def schedule_take_over(*, schedule: RecorderSchedule, owner: str, node, now: datetime) -> bool:
    """Take a recording whose agent stopped renewing its lease; True if this owner got it (with ``schedule``'s epoch)."""
    taken = lease_take(schedule, owner=owner, now=now)
    if taken:
        transaction.on_commit(metrics.RECORDING_TAKEOVERS.labels(studio=schedule.recorder.studio.slug).inc)
        RecordingSession.objects.filter(schedule=schedule).update(node=node)
        logger.info("%s took over %s", owner, schedule)
    return taken


def lease_take(schedule: RecorderSchedule, *, owner: str, now: datetime) -> bool:
    """Take the lease its holder stopped renewing, if the window is still as ``schedule`` was read; its status stays.

    ``schedule`` then holds the new owner and lease epoch (the holder's writes are refused from here on)."""
    taken = RecorderSchedule.objects.filter(
        pk=schedule.pk, status=schedule.status, claimed_by=schedule.claimed_by, lease_expires_at__lt=now
    ).update(claimed_by=owner, lease_expires_at=lease_deadline(now), updated_at=now)
    if taken:
        schedule.claimed_by = owner
        schedule.lease_epoch = RecorderSchedule.objects.values_list("lease_epoch", flat=True).get(pk=schedule.pk)
    return bool(taken)


@transaction.atomic
def recording_started(*, schedule: RecorderSchedule, epoch: int, now: datetime, data_since: datetime) -> None:
    """A run wrote its first sample, the one of ``data_since`` on the wall clock: the window runs, its asset is live.

    The session starts, or a gap in it ends, at that sample's instant, not when we noticed.
    """
    fencing.hold(RecorderSchedule, pk=schedule.pk, epoch=epoch)
    starts = schedule.status == Status.STARTING
    if starts:  # rows in the order _recording_complete takes them (window, session, asset)
        schedule.move_to(Status.RUNNING)
    session = RecordingSession.objects.select_for_update().get(schedule=schedule)
    if starts:
        session.started_at = data_since
        session.save(update_fields=["started_at", "updated_at"])
        schedule_announce(schedule)
        transaction.on_commit(partial(metrics.RECORDING_START_ERROR.labels(studio=schedule.recorder.studio.slug).observe,
                                      (data_since - schedule.record_from).total_seconds()))
    if session.gaps and session.gaps[-1][1] is None:
        session.gaps[-1][1] = data_since.isoformat()
        session.save(update_fields=["gaps", "updated_at"])
    MediaAsset.objects.filter(pk=session.asset_id).move_to(MediaAsset.Status.LIVE, updated_at=now)


@transaction.atomic
def recording_interrupted(*, schedule: RecorderSchedule, epoch: int, since: datetime, reason: str) -> None:
    """Note the start of a gap in the recording, and why (the source dropped or was not reached, its agent stopped)."""
    fencing.hold(RecorderSchedule, pk=schedule.pk, epoch=epoch)
    session = RecordingSession.objects.select_for_update().get(schedule=schedule)
    if not session.gaps or session.gaps[-1][1] is not None:
        session.gaps.append([since.isoformat(), None, str(reason)[:500]])
        session.save(update_fields=["gaps", "updated_at"])


@transaction.atomic
def schedule_fail(*, schedule: RecorderSchedule, reason: str, epoch: int | None = None) -> None:
    """The recording could not be made: say why, once, and tell the desk (if the lease is still ``epoch``, if given)."""
    if epoch is not None:
        fencing.hold(RecorderSchedule, pk=schedule.pk, epoch=epoch)
    schedule.move_to(Status.FAILED, error_message=reason[:2000], lease_expires_at=None)
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
    schedule_announce(schedule)


@transaction.atomic
def recording_source_dead(*, schedule: RecorderSchedule, epoch: int, since: datetime) -> None:
    """The window's source has sent silence or nothing since ``since``: the desk is alerted, the recorder's card says so."""
    fencing.hold(RecorderSchedule, pk=schedule.pk, epoch=epoch)
    recorder = schedule.recorder
    alert_raise(
        studio=recorder.studio_id, code="source_dead", subject=recorder.name, severity=Alert.Severity.CRITICAL,
        message=_("%(recorder)s has sent no audio since %(since)s, while recording %(window)s.") % {
            "recorder": recorder.name, "window": schedule.name,
            "since": f"{timezone.localtime(since, schedule.studio_zone()):%H:%M:%S}"},
    )
    events.publish(studio_id=recorder.studio_id, type=EventType.SCHEDULE,
                   payload={**schedule_row(schedule), "silent_since": events.iso(since)})


@transaction.atomic
def recording_source_back(*, schedule: RecorderSchedule, epoch: int) -> None:
    """Audio is coming again: the dead-source alert is closed, and the card shows the window as before."""
    fencing.hold(RecorderSchedule, pk=schedule.pk, epoch=epoch)
    alerts_clear(studio_id=schedule.recorder.studio_id, code="source_dead", subject=schedule.recorder.name)
    events.publish(studio_id=schedule.recorder.studio_id, type=EventType.SCHEDULE,
                   payload={**schedule_row(schedule), "silent_since": None})


def leases_renew(*, held: dict[int, int], now: datetime) -> set[int]:
    """Extend the leases an agent holds (window id: its epoch); return those it still holds (the rest: taken or ended)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {RecorderSchedule._meta.db_table} AS leased SET lease_expires_at = %s "
            "FROM unnest(%s::bigint[], %s::bigint[]) AS lease(id, epoch) "
            "WHERE leased.id = lease.id AND leased.lease_epoch = lease.epoch AND leased.status = ANY(%s) "
            "RETURNING leased.id",
            # a cancelled window is still its agent's while it finishes what was recorded up to the cancel
            [lease_deadline(now), list(held), list(held.values()),
             [Status.STARTING, Status.RUNNING, Status.STOPPING, Status.CANCELLED]],
        )
        held = {row[0] for row in cursor.fetchall()}
    MediaAsset.objects.filter(recording_session__schedule_id__in=held, status=MediaAsset.Status.LIVE).update(updated_at=now)
    return held


def recording_last_data_at(schedule: RecorderSchedule) -> datetime:
    """When the recorded audio ends: where the last run's files reach in the window, else the last lease renewal."""
    heard = engine.audio_spans(engine.recorded_pieces(recording_directory(schedule)))
    if heard:
        return schedule.record_from + timedelta(seconds=heard[-1][1] / engine.SAMPLE_RATE)
    renewed = (schedule.lease_expires_at or timezone.now()) - timedelta(seconds=settings.AGENT_LEASE_SECONDS)
    return max(renewed, schedule.start_at)


def schedule_begin_stop(*, schedule: RecorderSchedule, epoch: int, now: datetime) -> bool:
    """Claim the stop of a starting or running window (→ stopping); True if the lease is still ``epoch``."""
    return bool(
        RecorderSchedule.objects.filter(pk=schedule.pk, lease_epoch=epoch)
        .move_to(Status.STOPPING, lease_expires_at=lease_deadline(now), updated_at=now)
    )


def recording_finalize(*, schedule: RecorderSchedule, stopped_at: datetime,
                       epoch: int | None = None) -> RecorderSchedule:
    """Join what was recorded into the window's asset and close its session, once.

    A stopping window becomes completed; a cancelled one keeps its status but its
    recording up to the cancel is kept; with nothing recorded the window fails.
    An agent and a tick that both reach here (the agent was slow, its lease ran
    out) are serialised by the recording lock, and the second finds it done. The
    file work (joining, probing, hashing) holds no transaction open: the result is
    written by a short compare-and-set, refused if the lease is no longer ``epoch`` (when given: an agent's).
    """
    with locks.recording_lock(schedule.pk):
        schedule.refresh_from_db()
        session = RecordingSession.objects.get(schedule=schedule)
        if session.status != RecordingSession.Status.RECORDING or schedule.status not in (Status.STOPPING, Status.CANCELLED):
            return schedule
        directory = recording_directory(schedule)
        finished = sorted(directory.glob("recording.*")) if directory.exists() else []
        if not engine.recording_parts(directory) and not finished:
            if schedule.status != Status.CANCELLED:
                schedule_fail(schedule=schedule, epoch=epoch,
                              reason=str(_("Nothing was recorded: ffmpeg wrote no data.")))
            else:
                with transaction.atomic():
                    if epoch is not None:
                        fencing.hold(RecorderSchedule, pk=schedule.pk, epoch=epoch)
                    RecordingSession.objects.filter(pk=session.pk).move_to(RecordingSession.Status.COMPLETED,
                                                                           ended_at=stopped_at)
                    RecorderSchedule.objects.filter(pk=schedule.pk).update(lease_expires_at=None)
                    MediaAsset.objects.filter(pk=session.asset_id).move_to(  # no file will come: the library says so
                        MediaAsset.Status.ERROR, error_message=str(_("The window was cancelled before anything was "
                                                                     "recorded.")), updated_at=timezone.now())
            return schedule
        if session.asset_id is None:  # deleted around the model, which keeps it while recording
            schedule_fail(schedule=schedule, epoch=epoch,
                          reason=str(_("Its media asset was deleted while it recorded.")))
            return schedule
        pieces = engine.recorded_pieces(directory)
        if not pieces and not finished:
            schedule_fail(schedule=schedule, epoch=epoch,
                          reason=str(_("Nothing readable was recorded: ffmpeg's files hold no audio.")))
            return schedule
        # a cancelled window keeps what was recorded before the cancel
        window_samples = round((min(schedule.record_until, stopped_at) - schedule.record_from).total_seconds()
                               * engine.SAMPLE_RATE)
        gaps = _gaps_with_reasons(schedule.record_from, engine.gaps_in(pieces, window_samples), noted=session.gaps)
        levels = engine.levels_summary(directory, schedule.record_from)  # before the join tidies the runs' notes away
        output_format = schedule.recorder.output_format
        target = finished[0] if finished and not pieces else directory / f"recording.{engine.OUTPUT_PROFILES[output_format][1]}"
        try:
            if pieces:
                engine.assemble(pieces, target, window_samples=window_samples, output_format=output_format)
            probed = media.probe(target)
            if pieces:  # the file holds the window's samples exactly; a lossy file's probed length counts its codec's
                probed = dataclasses.replace(probed, duration_seconds=window_samples / engine.SAMPLE_RATE)  # padding
            checksum = media.sha256_file(target)
        except UserError as error:
            schedule_fail(schedule=schedule, epoch=epoch, reason=str(error))
            return schedule
        heard = engine.audio_spans(pieces)
        first_sample = schedule.record_from + timedelta(seconds=heard[0][0] / engine.SAMPLE_RATE) if heard else None
        _recording_complete(schedule, session, target, probed, checksum, stopped_at,
                            gaps=gaps if pieces else None, started_at=first_sample,
                            levels=levels, epoch=epoch)
    return schedule


def _gaps_with_reasons(record_from: datetime, gaps: list[tuple[int, int]], *, noted: list) -> list[list]:
    """The gaps the files show, as [start, end, reason] (UTC instants), each with the reason noted when it began."""
    found = []
    for start, end in gaps:
        begins = record_from + timedelta(seconds=start / engine.SAMPLE_RATE)
        ends = record_from + timedelta(seconds=end / engine.SAMPLE_RATE)
        # the noted gap that began nearest this one (a noted start is where the agent saw the audio stop)
        reasons = sorted((abs((datetime.fromisoformat(note[0]) - begins).total_seconds()), note[2])
                         for note in noted if len(note) > 2 and datetime.fromisoformat(note[0]) < ends)
        found.append([begins.isoformat(), ends.isoformat(), reasons[0][1] if reasons else ""])
    return found


@transaction.atomic
def _recording_complete(schedule, session, target: Path, probed, checksum: str, stopped_at: datetime, *,
                        gaps: list | None, started_at: datetime | None, levels: dict, epoch: int | None) -> None:
    # Rows in the order recording_started takes them (window, session, asset): two writers never wait on each other.
    if epoch is None:
        RecorderSchedule.objects.select_for_update().filter(pk=schedule.pk).first()
    else:
        fencing.hold(RecorderSchedule, pk=schedule.pk, epoch=epoch)
    session = RecordingSession.objects.select_for_update().get(pk=session.pk)  # its gaps as they are now
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
    if gaps is None:  # joined before (a finish that was cut off): the gaps noted while it recorded
        gaps = [[start, end or stopped_at.isoformat(), *rest] for start, end, *rest in session.gaps]
    RecordingSession.objects.filter(pk=session.pk).move_to(
        RecordingSession.Status.COMPLETED, ended_at=stopped_at, gaps=gaps, updated_at=stopped_at,
        started_at=started_at or session.started_at,  # its first sample's instant, from the files
        levels=levels,
    )
    if schedule.status == Status.STOPPING:
        schedule.move_to(Status.COMPLETED, lease_expires_at=None)
        schedule_announce(schedule)
    else:  # cancelled: its recording is kept, and nobody holds it any more
        RecorderSchedule.objects.filter(pk=schedule.pk).update(lease_expires_at=None)
