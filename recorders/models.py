from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from recorders.sources import parse_source, validate_source
from station.db import no_overlap
from station.errors import UserError
from station.bounds import InRange
from station.models import (Node, RecurringWindow, Studio, StudioOwnedModel, StudioStatusMachine, TimeStampedModel,
                            recurring_window_checks)

# A roll longer than an hour is a second window, not a margin: windows_to_arm looks this far ahead.
MAX_ROLL_SECONDS = 3600
# ffmpeg restarts a segment at each boundary: shorter ones churn files, longer ones lose more to a crash.
MIN_SEGMENT_SECONDS, MAX_SEGMENT_SECONDS = 10, 3600

class Recorder(StudioOwnedModel):
    """An input a node captures with ffmpeg: a network stream, a capture device or a test tone (recorders.sources)."""

    class OutputFormat(models.TextChoices):
        MP3 = "mp3", _("MP3 320 kbit/s")
        AAC = "aac", _("AAC 256 kbit/s")
        FLAC = "flac", _("FLAC (lossless)")
        WAV = "wav", _("WAV PCM (uncompressed)")

    studio = models.ForeignKey(Studio, on_delete=models.CASCADE, related_name="recorders", verbose_name=_("studio"))
    name = models.CharField(_("name"), max_length=120)
    source_url = models.CharField(
        _("source"),
        max_length=500,
        validators=[validate_source],
        help_text=_("What is recorded: an http(s):// or icecast:// stream, srt://host:port, a capture device of the "
                    "recorder's node (alsa:hw:0,0, pulse:default) or a test tone (tone:1000)."),
    )
    node = models.ForeignKey(
        Node, on_delete=models.PROTECT, null=True, blank=True, related_name="recorders", verbose_name=_("node"),
        help_text=_("Host that runs ffmpeg for this recorder. Empty: any node that can record."),
    )
    output_format = models.CharField(_("output format"), max_length=8, choices=OutputFormat.choices, default=OutputFormat.MP3)
    segment_seconds = models.PositiveIntegerField(
        _("segment length (s)"), default=600,
        validators=[MinValueValidator(MIN_SEGMENT_SECONDS), MaxValueValidator(MAX_SEGMENT_SECONDS)],
        help_text=_("Recordings are written in segments of this length (10 s to an hour)."),
    )
    pre_roll_seconds = models.PositiveIntegerField(
        _("pre-roll (s)"), default=0, validators=[MaxValueValidator(MAX_ROLL_SECONDS)],
        help_text=_("Start this early (at most an hour)."),
    )
    post_roll_seconds = models.PositiveIntegerField(
        _("post-roll (s)"), default=0, validators=[MaxValueValidator(MAX_ROLL_SECONDS)],
        help_text=_("Stop this late (at most an hour)."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta(StudioOwnedModel.Meta):
        verbose_name = _("recorder")
        verbose_name_plural = _("recorders")
        constraints = [
            models.UniqueConstraint(fields=["studio", "name"], name="recorder_name_unique_in_studio"),
            InRange("pre_roll_seconds", "post_roll_seconds", lower=0, upper=MAX_ROLL_SECONDS,
                    name="recorder_rolls_in_range", violation_error_code="roll_out_of_range",
                    violation_error_message=_("Pre- and post-rolls are at most an hour.")),
            InRange("segment_seconds", lower=MIN_SEGMENT_SECONDS, upper=MAX_SEGMENT_SECONDS,
                    name="recorder_segment_in_range", violation_error_code="segment_out_of_range",
                    violation_error_message=_("Segments are 10 seconds to an hour long.")),
        ]

    def clean(self) -> None:
        super().clean()
        try:
            source = parse_source(self.source_url)
        except UserError:
            return  # the field's own validator says why
        if source.kind != "device":
            return
        if self.node is None:
            raise ValidationError({"node": ValidationError(
                _("A capture device belongs to one host: choose the node whose %(device)s this recorder records."),
                code="device_needs_node", params={"device": source.device})})
        if source.device not in (self.node.capture_devices or []):
            raise ValidationError({"source_url": ValidationError(
                _("%(node)s offers no capture device %(device)s; it offers: %(offered)s."), code="device_not_offered",
                params={"node": self.node, "device": source.device,
                        "offered": ", ".join(self.node.capture_devices or []) or _("none")})})


class RecorderSchedule(StudioStatusMachine, RecurringWindow, TimeStampedModel):
    """One window on a recorder; a recurring series queues its next window when one completes."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")  # waiting for its window
        STARTING = "starting", _("Starting")  # claimed by an agent, ffmpeg being spawned
        RUNNING = "running", _("Running")  # ffmpeg is recording
        STOPPING = "stopping", _("Stopping")  # window closed, ffmpeg finishing its last segment
        COMPLETED = "completed", _("Completed")  # recorded; the asset is ready
        FAILED = "failed", _("Failed")  # could not start or record; see error message
        CANCELLED = "cancelled", _("Cancelled")  # called off by staff; a running recorder is stopped
        MISSED = "missed", _("Missed")  # window passed with no agent to record it

    TRANSITIONS = {
        Status.PENDING: frozenset({Status.STARTING, Status.CANCELLED, Status.MISSED, Status.FAILED}),
        # A window that closes before ffmpeg's first data stops all the same: what it wrote is kept, or it fails.
        Status.STARTING: frozenset({Status.RUNNING, Status.STOPPING, Status.FAILED, Status.CANCELLED}),
        Status.RUNNING: frozenset({Status.STOPPING, Status.FAILED, Status.CANCELLED}),
        Status.STOPPING: frozenset({Status.COMPLETED, Status.FAILED}),
        Status.COMPLETED: frozenset(),
        Status.FAILED: frozenset(),
        Status.CANCELLED: frozenset(),
        Status.MISSED: frozenset(),
    }
    ACTIVE_STATUSES = (Status.PENDING, Status.STARTING, Status.RUNNING, Status.STOPPING)

    recorder = models.ForeignKey(Recorder, on_delete=models.CASCADE, related_name="schedules", verbose_name=_("recorder"))
    name = models.CharField(_("name"), max_length=200)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    error_message = models.TextField(_("error"), blank=True)
    previous = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="next_in_series",
        verbose_name=_("previous window"),
        help_text=_("The window of the same series this one was queued after."),
    )
    claimed_by = models.CharField(_("claimed by"), max_length=120, blank=True)
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)
    lease_epoch = models.PositiveBigIntegerField(
        _("lease epoch"), default=0, editable=False,
        help_text=_("Raised by the database each time another agent claims the window: an agent's writes carry the "
                    "epoch it was given and are refused once it is stale (station.fencing)."),
    )

    studio_lookup = "recorder__studio"

    class Meta:
        ordering = ["start_at"]
        verbose_name = _("recorder schedule")
        verbose_name_plural = _("recorder schedules")
        constraints = [
            *recurring_window_checks("recorder_schedule", ends_after_start=_("The window must end after it starts.")),
            no_overlap(
                name="recorder_schedule_no_overlap",
                owner="recorder",
                condition=Q(status__in=["pending", "starting", "running", "stopping"]),
                code="window_overlap",
                message=_("This window overlaps another active window on the same recorder."),
            ),
        ]
        indexes = [
            models.Index(fields=["status", "start_at"], name="recorder_schedule_due_idx"),
            # The tick's look-ups among a year of finished windows (bench/tick_scale.py): the windows someone
            # holds (terminal moves clear the lease), and the recurring ones whose series may need its next.
            models.Index(fields=["lease_expires_at"], name="recorder_schedule_leased_idx",
                         condition=Q(lease_expires_at__isnull=False)),
            models.Index(fields=["end_at"], name="recorder_schedule_series_idx", condition=~Q(recurrence="none")),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.start_at:%Y-%m-%d %H:%M} UTC)"

    @property
    def record_from(self):
        """When ffmpeg starts: the window's start less the recorder's pre-roll."""
        return self.start_at - timedelta(seconds=self.recorder.pre_roll_seconds)

    @property
    def record_until(self):
        """When ffmpeg stops: the window's end plus the recorder's post-roll."""
        return self.end_at + timedelta(seconds=self.recorder.post_roll_seconds)

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_recorder_id = instance.__dict__.get("recorder_id")
        return instance

    def save(self, *args, **kwargs):
        adding = self._state.adding
        super().save(*args, **kwargs)
        if adding:  # a new window has recorded nothing: its session is known to be none without asking
            type(self).session.related.set_cached_value(self, None)

    def studio_zone(self):
        return self.recorder.studio.zone

    @property
    def timing_locked(self) -> bool:
        """Once claimed, a window's recorder and times belong to its agent: stop-now and cancel change them."""
        return not self._state.adding and self.status != self.Status.PENDING

    def clean(self) -> None:
        if self.timing_locked and (self.moved_since_loaded()
                                   or self.recorder_id != getattr(self, "_loaded_recorder_id", self.recorder_id)):
            raise ValidationError(
                _("%(schedule)s is %(status)s; its recorder and times can no longer change: use stop-now or cancel."),
                code="window_claimed", params={"schedule": self.name, "status": self.get_status_display()})
        super().clean()
        if self._state.adding and self.end_at and self.end_at <= timezone.now():
            raise ValidationError(
                {"end_at": ValidationError(_("This window is already over; a recording can't be scheduled in the past."),
                                           code="window_in_past")}
            )


def keep_while_recording(collector, field, sub_objs, using):
    """An asset being recorded can't be deleted (its window would never finish); a finished one can: SET_NULL."""
    recording = [session for session in sub_objs if session.status == RecordingSession.Status.RECORDING]
    if recording:
        raise models.ProtectedError(
            _("%(asset)s is being recorded; stop or cancel its window before deleting it.")
            % {"asset": recording[0].asset}, recording)
    models.SET_NULL(collector, field, sub_objs, using)


class RecordingSession(StudioStatusMachine, TimeStampedModel):
    """What actually happened when a schedule's window was recorded: one per window."""

    class Status(models.TextChoices):
        RECORDING = "recording", _("Recording")  # its window is open (or closing): agents write its parts
        COMPLETED = "completed", _("Completed")  # its parts are joined into the asset (a cancelled window's too)
        FAILED = "failed", _("Failed")  # nothing usable was recorded; see error message

    TRANSITIONS = {
        Status.RECORDING: frozenset({Status.COMPLETED, Status.FAILED}),
        Status.COMPLETED: frozenset(),
        Status.FAILED: frozenset(),
    }

    schedule = models.OneToOneField(
        RecorderSchedule, on_delete=models.CASCADE, related_name="session", verbose_name=_("schedule")
    )
    recorder = models.ForeignKey(Recorder, on_delete=models.CASCADE, related_name="sessions", verbose_name=_("recorder"))
    node = models.ForeignKey(Node, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("node"))
    asset = models.OneToOneField(
        "ingest.MediaAsset", on_delete=keep_while_recording, null=True, blank=True, related_name="recording_session",
        verbose_name=_("asset"),
    )
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.RECORDING)
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    gaps = models.JSONField(
        _("gaps"), default=list, blank=True, help_text=_("Stretches with no audio, as [start, end, reason]: ISO instants and why.")
    )
    levels = models.JSONField(
        _("levels"), default=dict, blank=True, editable=False,
        help_text=_("What the recording sounds like: peak and RMS level (dBFS), and its silences as [start, end] pairs."),
    )
    error_message = models.TextField(_("error"), blank=True)

    studio_lookup = "recorder__studio"

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("recording session")
        verbose_name_plural = _("recording sessions")

    def __str__(self) -> str:
        return f"{self.recorder} {self.started_at:%Y-%m-%d %H:%M}"
