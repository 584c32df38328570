"""The node agent's recorder supervisor: starts, watches and stops ffmpeg for this node's windows.

It keeps no state the database doesn't have: after a restart it re-reads the
windows it should record and takes back those whose lease ran out. Its writes for a window
carry the window's lease epoch (``station.fencing``): refused, they mean another agent holds it,
and the window's ffmpegs are stopped at once with nothing more written. Past its lease by its own
clock (frozen, or cut off from the database) its files take no more audio until it renews.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone
from django.utils.translation import gettext as _

from recorders import engine, selectors, services
from recorders.models import RecorderSchedule
from recorders.sources import Source, parse_source
from station import metrics
from station.errors import TransitionNotAllowed, UserError
from station.fencing import Fenced
from station.notify import tables_of
from station.processes import yield_to_engines

logger = logging.getLogger(__name__)
Status = RecorderSchedule.Status
RESTART_BACKOFF_SECONDS = (0.5, 1, 2, 5)
ARM_HORIZON = timedelta(seconds=30)
# Stopping ffmpeg, joining and probing run off the loop so starts stay on time, and below their priority
# (station.processes.yield_to_engines): a burst of windows ending never holds up the next to begin.
FINISHING_THREADS = 4
LEAST_RUN_SECONDS = 0.1  # a window with less than this left to record is full
# A gap is written as silence this far behind the clock: a source back within it (an Icecast burst
# of what it played while we were away) fills the gap with its audio instead.
LATE_AUDIO_SECONDS = 10
# A lease is counted from before the renewal was sent, less this: a clock's drift, an encoder's buffer.
LEASE_MARGIN_SECONDS = 1.0


@dataclass
class Recording:
    """A window this agent is recording."""

    schedule: RecorderSchedule
    file: engine.WindowFile
    run: engine.CaptureRun | None = None
    started: bool = False  # some run wrote a sample of the window
    restarts: int = 0
    restart_at: float = 0.0
    source_ended: bool = False  # nothing more to record: a finite source ended, or the window is full
    no_audio_since: float | None = None  # a run ended mid-window: nothing has come since (epoch seconds)
    source_dead: bool = False  # the desk was told the source is silent or gone
    fenced: bool = False  # a write was refused: another agent holds the window

    @property
    def epoch(self) -> int:
        """The lease epoch this agent was given for the window: its writes carry it."""
        return self.schedule.lease_epoch

    def lease_renewed(self, asked_at: float) -> None:
        """The lease was extended by a renewal sent at ``asked_at``: the file may take audio until it would lapse."""
        self.file.held_until = asked_at + settings.AGENT_LEASE_SECONDS - LEASE_MARGIN_SECONDS


def _recording(schedule: RecorderSchedule, *, leased_at: float, taken_over: bool = False) -> Recording:
    """A window to record, leased at ``leased_at``; one ``taken_over`` goes on in a file that starts with what the
    earlier agents recorded."""
    directory = services.recording_directory(schedule)
    recording = Recording(schedule=schedule, file=engine.WindowFile(
        directory=directory, output_format=schedule.recorder.output_format,
        segment_seconds=schedule.recorder.segment_seconds,
        window=(schedule.record_from.timestamp(), schedule.record_until.timestamp()),
        earlier=engine.recorded_pieces(directory) if taken_over else []))
    recording.lease_renewed(leased_at)
    return recording


def _restart_later(recording: Recording, backoff: float) -> None:
    """Start the window's ffmpeg again after ``backoff`` s: its run ended before the window did."""
    recording.restart_at = time.time() + backoff
    recording.restarts += 1
    metrics.ENGINE_RESTARTS.labels(engine="ffmpeg").inc()


def connect_at(schedule: RecorderSchedule) -> datetime:
    """When a window's source is connected: ahead of its recording, so its first sample is placed on the clock."""
    return schedule.record_from - timedelta(seconds=settings.RECORDER_CONNECT_AHEAD_SECONDS)


class RecorderSupervisor:
    watches = tables_of("recorders")  # the changes that call for ``on_change``

    def __init__(self, *, node, owner: str, capture_devices: list[str] = ()):
        self.node = node
        self.owner = owner
        self.capture_devices = list(capture_devices)  # what this host offers; a device source records only one of these
        self.recordings: dict[int, Recording] = {}
        self.finishing_leases: dict[int, int] = {}  # windows being finished off the loop: their epochs, still renewed
        self.armed: list[RecorderSchedule] = []
        self.finishing = ThreadPoolExecutor(max_workers=FINISHING_THREADS, thread_name_prefix="finish",
                                            initializer=yield_to_engines)
        # `running` is written the moment a run holds its first sample, not at the loop's next pass
        self.announcing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="announce")

    # -- planning -----------------------------------------------------------------------------

    def rearm(self, now: datetime) -> None:
        """Re-read the windows to start soon and any recordings another agent abandoned."""
        self.armed = [s for s in selectors.windows_to_arm(self.node, until=now + ARM_HORIZON) if s.pk not in self.recordings]
        for schedule in selectors.abandoned_windows(self.node, now=now):
            asked_at = time.time()
            if schedule.pk not in self.recordings and services.schedule_take_over(
                schedule=schedule, owner=self.owner, node=self.node, now=now
            ):
                services.recording_interrupted(schedule=schedule, epoch=schedule.lease_epoch,
                                               since=services.recording_last_data_at(schedule),
                                               reason=_("Its agent stopped; %(node)s took it over.") % {"node": self.node})
                self.recordings[schedule.pk] = _recording(schedule, leased_at=asked_at, taken_over=True)

    def next_deadline(self) -> float | None:
        """Seconds-since-epoch of the next moment this supervisor must act, if any."""
        moments = [connect_at(s).timestamp() for s in self.armed]
        moments += [r.schedule.record_until.timestamp() for r in self.recordings.values()]
        if self.recordings:
            moments.append(time.time() + 0.2)  # watch running ffmpegs closely
        return min(moments) if moments else None

    # -- acting -------------------------------------------------------------------------------

    def step(self, now: datetime) -> None:
        for schedule in [s for s in self.armed if connect_at(s) <= now]:
            self.armed.remove(schedule)
            try:
                if schedule.record_until <= now:
                    continue  # already over: the tick reports it missed
                asked_at = time.time()
                claimed = services.schedule_claim(schedule_id=schedule.pk, owner=self.owner, node=self.node, now=now)
            except DatabaseError:
                raise  # the database, not the window: the agent reconnects
            except Exception:  # left to the tick, which fails it with its reason; the others start on time
                logger.exception("recording %s: cannot be claimed", schedule)
                continue
            if claimed:
                self.recordings[claimed.pk] = _recording(claimed, leased_at=asked_at)
        for recording in list(self.recordings.values()):
            try:
                if recording.fenced:
                    raise Fenced(RecorderSchedule, recording.schedule.pk, recording.epoch)
                self._drive(recording, now)
            except Fenced:
                self._fenced(recording)
            except (TransitionNotAllowed, RecorderSchedule.DoesNotExist):
                self._abandon(recording, "the window changed under us")
            except DatabaseError:
                raise  # the database, not the window: the agent reconnects
            except Exception as error:  # one bad window fails alone, with its reason; the others record on
                logger.exception("recording %s: cannot go on", recording.schedule)
                self._fail(recording, str(error) if isinstance(error, UserError) else
                           _("The agent could not record it: %(reason)s") % {"reason": type(error).__name__})

    def _source(self, recording: Recording) -> Source:
        """The window's source, as this host may record it."""
        source = parse_source(recording.schedule.recorder.source_url, resolve_now=False)
        if source.kind == "device" and source.device not in self.capture_devices:
            raise UserError("device_not_offered", _("%(node)s offers no capture device %(device)s."),
                            {"node": self.node, "device": source.device})
        return source

    def _drive(self, recording: Recording, now: datetime) -> None:
        schedule = recording.schedule
        if now >= schedule.record_until:
            self._finish(recording, now)
            return
        run = recording.run
        if run is None or not run.has_output():  # silence where no audio comes, kept a little behind the clock
            recording.file.pad_until(round((time.time() - LATE_AUDIO_SECONDS - recording.file.window_start) * engine.SAMPLE_RATE))
        if run is None:
            self._watch_source(recording)
            if recording.source_ended or time.time() < recording.restart_at:
                return
            if (schedule.record_until - now).total_seconds() < LEAST_RUN_SECONDS:
                recording.source_ended = True
                return
            recording.run = engine.CaptureRun(
                source=self._source(recording), file=recording.file,
                on_first_sample=lambda instant: self.announcing.submit(self._first_sample, recording, instant),
            )
            logger.info("recording %s: ffmpeg %s started", schedule, recording.run.pid)
            return
        if run.has_output():  # the database was told by the run itself, the moment it happened (``_first_sample``)
            recording.started, recording.restarts, recording.no_audio_since = True, 0, None
        self._watch_source(recording)
        if run.alive():
            waited = time.time() - max(run.started_at, schedule.record_from.timestamp())
            if not recording.started and waited > settings.RECORDER_STARTUP_TIMEOUT_SECONDS:
                self._fail(recording, f"{schedule.recorder.source_url} gave no data within "
                                      f"{int(settings.RECORDER_STARTUP_TIMEOUT_SECONDS)} s")
            return
        reason = run.failure_reason()
        recording.run = None
        if not recording.started:
            # Not reached yet: tried again until the startup timeout (counted from the window's start), then failed
            # with the reason; once it answers, the recording starts there and the missing head is a gap.
            waited = time.time() - schedule.record_from.timestamp()
            if waited > settings.RECORDER_STARTUP_TIMEOUT_SECONDS:
                self._fail(recording, reason)
                return
            if waited > 0:  # the window is open without it: its head is a gap, and this is why
                services.recording_interrupted(schedule=schedule, epoch=recording.epoch, since=schedule.record_from,
                                               reason=reason)
            _restart_later(recording, RESTART_BACKOFF_SECONDS[min(recording.restarts, 1)])
            logger.info("recording %s: source not reached (%s); trying again", schedule, reason)
            return
        if run.window_full:
            recording.source_ended = True
            return
        ended = run.written_until
        recording.no_audio_since = ended or time.time()
        services.recording_interrupted(schedule=schedule, epoch=recording.epoch,
                                       since=datetime.fromtimestamp(ended, tz=UTC) if ended
                                       else services.recording_last_data_at(schedule), reason=reason)
        if run.source_ended:  # a file, not a stream, recorded once: the rest of the window is a gap
            recording.source_ended = True
            logger.info("recording %s: its source ended before the window did", schedule)
            return
        # ffmpeg died mid-window: the gap is noted; start it again while the window is open.
        backoff = RESTART_BACKOFF_SECONDS[min(recording.restarts, len(RESTART_BACKOFF_SECONDS) - 1)]
        _restart_later(recording, backoff)
        logger.warning("recording %s: ffmpeg died (%s); restarting in %s s", schedule, reason, backoff)

    def _watch_source(self, recording: Recording) -> None:
        """Tell the desk when the source has been silent (as ffmpeg hears it) or sent nothing too long, and when it's back."""
        run = recording.run
        since = recording.file.silent_since if run is not None and run.has_output() else recording.no_audio_since
        if since is not None and time.time() - since >= settings.RECORDER_DEAD_SOURCE_SECONDS:
            if not recording.source_dead:
                recording.source_dead = True
                services.recording_source_dead(schedule=recording.schedule, epoch=recording.epoch,
                                               since=datetime.fromtimestamp(since, tz=UTC))
        elif since is None and recording.source_dead:
            recording.source_dead = False
            services.recording_source_back(schedule=recording.schedule, epoch=recording.epoch)

    def _first_sample(self, recording: Recording, instant: float) -> None:
        """A run holds the sample of ``instant``: the window runs from there, or a gap in it ends there."""
        try:  # on a connection this thread keeps open: a new one would cost more than the write
            schedule = RecorderSchedule.objects.select_related("recorder__studio").get(pk=recording.schedule.pk)
            services.recording_started(schedule=schedule, epoch=recording.epoch, now=timezone.now(),
                                       data_since=datetime.fromtimestamp(instant, tz=UTC))
            recording.schedule.status = schedule.status
        except Fenced:
            recording.fenced = True  # the loop stops it
        except (TransitionNotAllowed, RecorderSchedule.DoesNotExist):
            logger.info("recording %s: changed before its first sample was noted", recording.schedule)
        except Exception:  # the loop goes on; the files still say when it started
            logger.exception("recording %s: its start could not be noted", recording.schedule)
            connection.close()  # the next one connects afresh, in case this one is what failed

    def _finish(self, recording: Recording, now: datetime) -> None:
        self.recordings.pop(recording.schedule.pk, None)
        self.finishing_leases[recording.schedule.pk] = recording.epoch
        # cut at the window's end (or the cancel) exactly; the waiting happens off the loop
        recording.file.cut(min(recording.schedule.record_until, now).timestamp())
        self.finishing.submit(self._finish_off_loop, recording, now)

    def _finish_off_loop(self, recording: Recording, now: datetime) -> None:
        schedule = recording.schedule
        try:
            if recording.run:
                recording.run.stop()
            if schedule.status != Status.CANCELLED:
                asked_at = time.time()
                if not services.schedule_begin_stop(schedule=schedule, epoch=recording.epoch, now=timezone.now()):
                    logger.info("recording %s: no longer ours to stop", schedule)
                    recording.file.drop()
                    return
                recording.lease_renewed(asked_at)  # its file's last seconds may be written
                schedule.status = Status.STOPPING
            recording.file.finish()
            services.recording_finalize(schedule=schedule, stopped_at=now, epoch=recording.epoch)
            logger.info("recording %s: finished", schedule)
        except Fenced:
            logger.warning("recording %s: another agent holds it now; its finish is theirs", schedule)
        except Exception:  # the tick finishes it after the lease if this fails
            logger.exception("recording %s: finishing failed", schedule)
        finally:
            recording.file.drop()  # if not finished: no one else writes its notes, and it holds no encoder
            self.finishing_leases.pop(schedule.pk, None)
            close_old_connections()

    def _stop(self, recording: Recording) -> None:
        """Stop its run and finish its file where it is (another agent may go on with the window)."""
        if recording.run:
            recording.run.stop()
        recording.file.finish(to_window_end=False)

    def _fail(self, recording: Recording, reason: str) -> None:
        self.recordings.pop(recording.schedule.pk, None)
        self._stop(recording)
        try:
            services.schedule_fail(schedule=recording.schedule, epoch=recording.epoch, reason=reason)
        except (UserError, Fenced):
            logger.info("recording %s: already ended elsewhere", recording.schedule)

    def _abandon(self, recording: Recording, why: str) -> None:
        logger.warning("recording %s: stopping, %s", recording.schedule, why)
        self._stop(recording)
        self.recordings.pop(recording.schedule.pk, None)

    def _fenced(self, recording: Recording) -> None:
        """Another agent holds the window: stop its ffmpegs at once and write nothing more, not even the file's end."""
        logger.warning("recording %s: another agent holds it now (lease epoch %s is stale); stopping its ffmpeg",
                       recording.schedule, recording.epoch)
        self.recordings.pop(recording.schedule.pk, None)
        recording.file.drop()
        if recording.run:
            recording.run.kill()

    # -- changes and leases -------------------------------------------------------------------

    def on_change(self, now: datetime) -> None:
        """A schedule changed somewhere: re-read our recordings (end moved, cancelled) and re-arm."""
        current = {
            row["pk"]: row
            for row in RecorderSchedule.objects.filter(pk__in=list(self.recordings)).values("pk", "status", "end_at",
                                                                                            "lease_epoch")
        }
        for pk, recording in list(self.recordings.items()):
            if pk not in current:
                self._abandon(recording, "its window was deleted")
                continue
            if current[pk]["lease_epoch"] != recording.epoch:
                self._fenced(recording)
                continue
            for name in ("status", "end_at"):
                setattr(recording.schedule, name, current[pk][name])
            if recording.schedule.status == Status.CANCELLED:
                recording.schedule.end_at = min(recording.schedule.end_at, now)
                self._finish(recording, now)
        self.rearm(now)

    def renew(self, now: datetime) -> None:
        asked_at = time.time()
        leases = {**self.finishing_leases, **{pk: recording.epoch for pk, recording in self.recordings.items()}}
        held = services.leases_renew(held=leases, now=now)
        for pk, recording in list(self.recordings.items()):
            if pk in held:
                recording.lease_renewed(asked_at)
        if set(self.recordings) - held:
            self.on_change(now)

    def shutdown(self) -> None:
        """Stop ffmpeg cleanly; the windows are taken over by the next agent after their lease."""
        for recording in self.recordings.values():
            self._stop(recording)
        self.announcing.shutdown(wait=True)
        self.finishing.shutdown(wait=True)
