import secrets
import zoneinfo
from functools import cached_property

from django.conf import settings
from django.core import checks
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from station import bounds, recurrence
from station.db import end_after_start
from station.errors import UserError
from station.outbound import validate_public_urls
from station.transitions import StatusMachine, TransitionQuerySet


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(
            _("%(zone)s is not a known IANA time zone (e.g. Europe/London)."),
            code="unknown_time_zone",
            params={"zone": value},
        )


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        abstract = True


def recurring_window_checks(prefix: str, *, ends_after_start) -> list[models.CheckConstraint]:
    """The checks each concrete RecurringWindow's table carries: it ends after it starts (or is refused with the
    message ``ends_after_start``), and its instants and skip dates lie in the station's years."""
    return [
        end_after_start(name=f"{prefix}_end_after_start", message=ends_after_start),
        bounds.instants_in_range("start_at", "end_at", "series_start_at", "series_end_at",
                                 name=f"{prefix}_dates_in_range"),
        bounds.skip_dates_in_range("skip_dates", name=f"{prefix}_skip_dates_in_range"),
    ]


class RecurringWindow(models.Model):
    """A window (start, end) that may recur in its studio's local time.

    Its instants and skip dates lie in the station's years (station.bounds); each concrete model
    adds ``recurring_window_checks`` to its constraints so the database holds that too.
    """

    start_at = models.DateTimeField(_("starts at"), validators=[bounds.validate_schedulable])
    end_at = models.DateTimeField(_("ends at"), validators=[bounds.validate_schedulable])
    recurrence = models.CharField(
        _("recurrence"), max_length=8, choices=recurrence.Recurrence.choices, default=recurrence.Recurrence.NONE
    )
    rrule = models.CharField(
        _("RRULE"), max_length=500, blank=True, help_text=_("For a custom recurrence, e.g. FREQ=WEEKLY;BYDAY=MO,WE,FR.")
    )
    skip_dates = ArrayField(
        models.DateField(),
        default=list,
        blank=True,
        validators=[bounds.validate_skip_dates],
        verbose_name=_("skip dates"),
        help_text=_("Local dates (studio time) on which this series does not take place, comma separated."),
    )
    # The first window of the series: the anchor its rule is computed from, kept
    # when one window is started early or stopped late.
    series_start_at = models.DateTimeField(_("series starts at"), null=True, blank=True, editable=False)
    series_end_at = models.DateTimeField(_("series first window ends at"), null=True, blank=True, editable=False)

    ANCHOR_FIELDS = ("series_start_at", "series_end_at")

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_window = (instance.__dict__.get("start_at"), instance.__dict__.get("end_at"))
        return instance

    def save(self, *args, **kwargs):
        if self.series_start_at is None:  # a new series starts at its first window; moving one is record_edit_save's
            self.anchor_series()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], *self.ANCHOR_FIELDS}
        super().save(*args, **kwargs)
        self._loaded_window = (self.start_at, self.end_at)

    def clean(self) -> None:
        if self.rrule and self.recurrence != recurrence.Recurrence.RRULE:
            raise ValidationError(
                {"rrule": ValidationError(_("An RRULE is only used with the custom recurrence."), code="rrule_unused")}
            )
        if self.recurrence == recurrence.Recurrence.NONE:
            return
        series_start, series_end = (self.start_at, self.end_at) if self.anchors_series() else (
            self.series_start_at, self.series_end_at)
        instants = (series_start, series_end, self.end_at)
        if not all(instants) or not all(map(bounds.is_schedulable, instants)):
            return  # missing or out of range: those fields say why
        try:
            # What saving it proves is what expanding it needs: its windows within the horizon expansions search.
            recurrence.prove_series(start_at=series_start, end_at=series_end, recurrence=self.recurrence,
                                    rule_text=self.rrule, zone=self._zone_for_checks(), window_end=self.end_at)
        except UserError as error:
            refused = ValidationError(error.message, code=error.code, params=error.params)
            raise ValidationError({"rrule": refused}) from error

    def anchors_series(self) -> bool:
        """Whether a person's write makes this window the series' first: a new series, or a window they moved.

        Services that move one window (start now, stop now) update it without re-anchoring.
        """
        return self.series_start_at is None or self.moved_since_loaded()

    def moved_since_loaded(self) -> bool:
        return getattr(self, "_loaded_window", None) not in (None, (self.start_at, self.end_at))

    def anchor_series(self) -> None:
        """Compute the series' rule from this window from now on (the fields to save: ANCHOR_FIELDS)."""
        self.series_start_at, self.series_end_at = self.start_at, self.end_at

    def _zone_for_checks(self) -> zoneinfo.ZoneInfo:
        try:
            return self.studio_zone()
        except ObjectDoesNotExist:
            return zoneinfo.ZoneInfo("UTC")  # no recorder or channel chosen yet: that field says so

    def studio_zone(self) -> zoneinfo.ZoneInfo:
        raise NotImplementedError

    @property
    def duration(self):
        if self.start_at and self.end_at:
            return self.end_at - self.start_at
        return None

    def series_windows(self, *, not_before, limit: int = 1000):
        """Yield the series' (start, end) UTC windows starting at or after ``not_before``, within RULE_HORIZON of it."""
        return recurrence.occurrences(
            start_at=self.series_start_at or self.start_at,
            end_at=self.series_end_at or self.end_at,
            recurrence=self.recurrence,
            rule_text=self.rrule,
            zone=self.studio_zone(),
            skip_dates=self.skip_dates,
            not_before=not_before,
            limit=limit,
        )

    def following_window(self) -> tuple | None:
        """The series' first window starting at or after this one's end, in UTC; None for a one-off or an ended series."""
        if self.recurrence == recurrence.Recurrence.NONE:
            return None
        return next(self.series_windows(not_before=self.end_at), None)


class StudioScopedQuerySet(models.QuerySet):
    """Rows that belong to a studio, reached through the model's ``studio_lookup`` path."""

    def visible_to(self, user):
        """Rows a user may see: everything for superusers, their studios' rows for members."""
        if user.is_superuser:
            return self
        if not user.is_authenticated:
            return self.none()
        return self._in_studios(StudioMembership.objects.filter(user=user))

    def editable_by(self, user):
        """Rows a user may change: superusers, and operators of the row's studio."""
        if user.is_superuser:
            return self
        if not user.is_authenticated:
            return self.none()
        return self._in_studios(StudioMembership.objects.filter(user=user, role=StudioMembership.Role.OPERATOR))

    def _in_studios(self, memberships):
        # A subquery rather than a join through memberships: lists plan and run faster, and stay one row per row.
        studio = f"{self.model.studio_lookup}__in" if self.model.studio_lookup else "pk__in"
        return self.filter(**{studio: memberships.values("studio")})


class StatusQuerySet(TransitionQuerySet, StudioScopedQuerySet):
    """A studio's rows of a status machine: scoped like any row, moved through the transitions table."""


class StudioScopedModel(models.Model):
    """A row that belongs to one studio: users see and change only their studios' rows.

    Each concrete model names the path from its row to the studio in ``studio_lookup`` ("" for the studio itself).
    """

    objects = StudioScopedQuerySet.as_manager()

    class Meta:
        abstract = True

    @classmethod
    def check(cls, **kwargs):
        errors = super().check(**kwargs)
        if not cls._meta.abstract and not isinstance(getattr(cls, "studio_lookup", None), str):
            errors.append(checks.Error(
                "A studio-scoped model names the path to its studio in studio_lookup.",
                obj=cls, id="station.E001",
            ))
        return errors


class StudioStatusMachine(StatusMachine, StudioScopedModel):
    """A studio's status machine: scoped like any row, moved through its transitions table."""

    objects = StatusQuerySet.as_manager()

    class Meta:
        abstract = True


class ShownByName:
    """A row people know by its name: admin lists, logs and alerts show that."""

    def __str__(self) -> str:
        return self.name


class StudioOwnedModel(ShownByName, StudioScopedModel, TimeStampedModel):
    """One of a studio's own named things (a channel, playlist, recorder, ingest source or webhook).

    Each declares its ``studio`` foreign key and ``name``; this gives it the studio scope and the order lists show.
    """

    studio_lookup = "studio"

    class Meta:
        abstract = True
        ordering = ["studio", "name"]


def new_calendar_token() -> str:
    return secrets.token_urlsafe(32)


class Studio(ShownByName, StudioScopedModel):
    """A studio: the unit of ownership, permissions and local time."""

    name = models.CharField(_("name"), max_length=120, unique=True)
    slug = models.SlugField(_("slug"), max_length=60, unique=True)
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text=_("IANA zone in which this studio's schedules recur, e.g. Europe/London."),
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        through="StudioMembership",
        related_name="studios",
        verbose_name=_("members"),
    )
    calendar_public = models.BooleanField(
        _("public calendars"), default=False,
        help_text=_("Anyone may read the studio's calendar feeds; otherwise only with the calendar token."))
    calendar_token = models.CharField(
        _("calendar token"), max_length=64, default=new_calendar_token, editable=False,
        help_text=_("In the address of the studio's private calendar feeds; a new one makes the old addresses stop working."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    studio_lookup = ""  # a studio is its own scope

    class Meta:
        ordering = ["name"]
        verbose_name = _("studio")
        verbose_name_plural = _("studios")

    @cached_property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    def local_now(self):
        return timezone.now().astimezone(self.zone)


class StudioMembership(models.Model):
    """A user's place in a studio; operators change things, viewers only read."""

    class Role(models.TextChoices):
        OPERATOR = "operator", _("Operator")  # may change schedules, channels, media
        VIEWER = "viewer", _("Viewer")  # read-only: dashboards, logs

    studio = models.ForeignKey(Studio, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("studio"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="studio_memberships", verbose_name=_("user")
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.OPERATOR)

    class Meta:
        verbose_name = _("studio membership")
        verbose_name_plural = _("studio memberships")
        constraints = [models.UniqueConstraint(fields=["studio", "user"], name="studio_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.studio} ({self.get_role_display()})"


def new_node_key() -> str:
    return secrets.token_urlsafe(32)


class Node(ShownByName, models.Model):
    """A media host running the node agent: it records and plays out for every studio."""

    class Capability(models.TextChoices):
        RECORD = "record", _("Record (ffmpeg)")
        PLAYOUT = "playout", _("Play out (Liquidsoap)")
        DECKLINK = "decklink", _("SDI/Decklink output")

    name = models.CharField(_("name"), max_length=100, unique=True)
    hostname = models.CharField(_("host name"), max_length=255, blank=True)
    capabilities = models.JSONField(
        _("capabilities"),
        default=list,
        blank=True,
        help_text=_("What this host can do: record, playout, decklink."),
    )
    capture_devices = models.JSONField(
        _("capture devices"), default=list, blank=True, editable=False,
        help_text=_("Sound inputs this host's agent offers recorders (NODE_CAPTURE_DEVICES), e.g. alsa:hw:0,0."),
    )
    # Signs the node's requests for media (playout.cacher): kept in the database only, never shown.
    media_key = models.CharField(max_length=64, default=new_node_key, editable=False)
    enabled = models.BooleanField(_("enabled"), default=True, help_text=_("Disabled nodes get no new work."))
    last_heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)
    agent_version = models.CharField(_("agent version"), max_length=40, blank=True)
    agent_epoch = models.PositiveBigIntegerField(
        _("agent epoch"), default=0, editable=False,
        help_text=_("Raised each time an agent process registers as this node: an older one still running (frozen, "
                    "cut off) has its heartbeats refused and stops (station.fencing)."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("node")
        verbose_name_plural = _("nodes")

    def clean(self) -> None:
        unknown = set(self.capabilities or []) - set(self.Capability.values)
        if unknown:
            raise ValidationError(
                {"capabilities": _("Unknown capabilities: %(names)s.") % {"names": ", ".join(sorted(unknown))}}
            )
        stored = None if self._state.adding else Node.objects.only("name", "last_heartbeat_at").filter(pk=self.pk).first()
        if stored is not None and stored.name != self.name and stored.is_online():
            # The agent finds its node by name: it would register a new one and leave this one's channels behind.
            raise ValidationError({"name": ValidationError(
                _("%(node)s is online and its agent finds it by name: stop the agent before renaming the node."),
                code="node_online", params={"node": stored.name})})

    def is_online(self, now=None) -> bool:
        """Whether the agent heartbeated within NODE_HEARTBEAT_TIMEOUT seconds."""
        if self.last_heartbeat_at is None:
            return False
        now = now or timezone.now()
        return (now - self.last_heartbeat_at).total_seconds() <= settings.NODE_HEARTBEAT_TIMEOUT


class Alert(StudioScopedModel):
    """Something the on-air desk must look at: a failed start, an unreachable channel, a missing file."""

    class Severity(models.TextChoices):
        INFO = "info", _("Info")
        WARNING = "warning", _("Warning")
        CRITICAL = "critical", _("Critical")  # air is or will be affected

    studio = models.ForeignKey(Studio, on_delete=models.CASCADE, related_name="alerts", verbose_name=_("studio"))
    severity = models.CharField(_("severity"), max_length=16, choices=Severity.choices, default=Severity.WARNING)
    code = models.CharField(_("code"), max_length=80, help_text=_("Stable identifier of the kind of problem."))
    message = models.TextField(_("message"))
    subject = models.CharField(_("subject"), max_length=200, blank=True, help_text=_("What the alert is about."))
    created_at = models.DateTimeField(_("raised at"), default=timezone.now, db_index=True)
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("acknowledged by"),
    )

    studio_lookup = "studio"

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        indexes = [
            models.Index(fields=["studio", "created_at"], condition=Q(acknowledged_at__isnull=True), name="alert_open_idx")
        ]

    def __str__(self) -> str:
        return f"[{self.get_severity_display()}] {self.message[:80]}"

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None


class StudioEvent(models.Model):
    """A published change, kept a while: its id is the sequence number dashboards resume from."""

    studio = models.ForeignKey(Studio, on_delete=models.CASCADE, related_name="+", verbose_name=_("studio"))
    type = models.CharField(_("type"), max_length=80)
    payload = models.JSONField(_("payload"))
    created_at = models.DateTimeField(_("published at"), default=timezone.now, db_index=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("studio event")
        verbose_name_plural = _("studio events")
        indexes = [models.Index(fields=["studio", "id"], name="studio_event_resume_idx")]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"


class EventType(models.TextChoices):
    """The changes a dashboard or a webhook can follow (station.events.publish)."""

    ON_AIR = "playout.on_air", _("On air changed (as-run row opened and closed)")
    CHANNEL = "playout.channel", _("Channel status or health changed")
    SCHEDULE = "recorders.schedule", _("Recording window status changed")
    ALERT = "station.alert", _("Alert raised or acknowledged")
    DOWNLOAD = "ingest.download", _("Download progressed")
    TIMELINE = "station.timeline", _("Timeline changed (shows or recordings added, moved or removed)")
    TEST = "station.test", _("Test event (sent from the admin)")


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


class Webhook(StudioOwnedModel):
    """An outgoing HTTP POST, signed with its secret, for each of a studio's events of the chosen types."""

    studio = models.ForeignKey(Studio, on_delete=models.CASCADE, related_name="webhooks", verbose_name=_("studio"))
    name = models.CharField(_("name"), max_length=100)
    url = models.URLField(_("URL"), max_length=500, validators=[URLValidator(schemes=["http", "https"])],
                          help_text=_("Receives a JSON POST per event (http or https)."))
    secret = models.CharField(_("secret"), max_length=100, default=new_webhook_secret,
                              help_text=_("Signs each delivery (HMAC-SHA256, header X-Stationkeeper-Signature)."))
    event_types = ArrayField(models.CharField(max_length=40, choices=EventType.choices), verbose_name=_("events"),
                             help_text=_("The events this webhook receives."))
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta(StudioOwnedModel.Meta):
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")
        constraints = [models.UniqueConstraint(fields=["studio", "name"], name="webhook_name_unique_in_studio")]
        indexes = [GinIndex(fields=["event_types"], name="webhook_event_types_idx")]

    def clean(self) -> None:
        super().clean()
        if not self.event_types:
            raise ValidationError({"event_types": ValidationError(_("Choose at least one event."), code="no_events")})
        validate_public_urls("url", [self.url] if self.url else [])


class WebhookDelivery(StudioStatusMachine):
    """One event for one webhook: sent until the receiver answers 2xx or the attempts run out."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")  # waiting for its next attempt (next attempt at)
        DELIVERING = "delivering", _("Delivering")  # claimed by a sender until its lease expires
        SUCCEEDED = "succeeded", _("Succeeded")  # the receiver answered 2xx
        FAILED = "failed", _("Failed")  # the attempts ran out; staff may retry it

    TRANSITIONS = {
        # Retry now sends a waiting one sooner.
        Status.PENDING: frozenset({Status.DELIVERING, Status.PENDING}),
        # A claim whose sender vanished (its lease expired) is claimed again.
        Status.DELIVERING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.PENDING, Status.DELIVERING}),
        Status.SUCCEEDED: frozenset(),
        Status.FAILED: frozenset({Status.PENDING}),
    }

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("webhook"))
    event_seq = models.BigIntegerField(_("event number"), null=True, blank=True)
    event_type = models.CharField(_("event"), max_length=40, choices=EventType.choices)
    payload = models.JSONField(_("payload"))
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    lease_expires_at = models.DateTimeField(_("claimed until"), null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    attempt_log = models.JSONField(_("attempts log"), default=list, blank=True,
                                   help_text=_("Each attempt: when, HTTP status or error, time taken, response excerpt."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    studio_lookup = "webhook__studio"

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due_idx",
                                condition=Q(status__in=["pending", "delivering"]))]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.webhook} ({self.get_status_display()})"
