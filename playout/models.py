import secrets
import uuid

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KT
from django.utils.translation import gettext_lazy as _

from playout.dead_air import (DEAD_AIR_LIMITS, DEFAULT_DEAD_AIR_SECONDS, DEFAULT_SILENCE_THRESHOLD,
                              SILENCE_THRESHOLDS)
from playout.loudness import DEFAULT_LOUDNESS_TARGET, LOUDNESS_TARGETS
from playout.outputs.harbor import harbor_ports
from playout.outputs import OUTPUTS, Output, clean_output_settings
from station.db import end_after_start, no_overlap
from station.outbound import validate_public_urls
from station.bounds import InRange, instants_in_range
from station.models import (Node, RecurringWindow, ShownByName, Studio, StudioOwnedModel, StudioScopedModel,
                            StudioStatusMachine, TimeStampedModel, recurring_window_checks)

LIVE_MOUNT = "presenter"  # where presenters connect, on the channel's live input port
DEFAULT_LIVE_GRACE_SECONDS = 5.0
LIVE_GRACE_LIMITS = (0.5, 60.0)
DEFAULT_LIVE_MARGIN_SECONDS = 900
MAX_LIVE_MARGIN_SECONDS = 3600


class Playlist(StudioOwnedModel):
    """An ordered list of media (and webstreams) a show plays, or a channel's filler."""

    studio = models.ForeignKey(Studio, on_delete=models.CASCADE, related_name="playlists", verbose_name=_("studio"))
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)

    class Meta(StudioOwnedModel.Meta):
        verbose_name = _("playlist")
        verbose_name_plural = _("playlists")
        constraints = [models.UniqueConstraint(fields=["studio", "name"], name="playlist_name_unique_in_studio")]

    def total_seconds(self) -> float:
        return sum(item.play_seconds or 0 for item in self.items.select_related("asset"))


class PlaylistItem(StudioScopedModel):
    """One entry of a playlist: a media asset (optionally cued) or a webstream for a fixed length."""

    playlist = models.ForeignKey(Playlist, on_delete=models.CASCADE, related_name="items", verbose_name=_("playlist"))
    position = models.PositiveIntegerField(_("position"), default=0)
    asset = models.ForeignKey(
        "ingest.MediaAsset", on_delete=models.PROTECT, null=True, blank=True, related_name="playlist_items",
        verbose_name=_("media"),
    )
    webstream_url = models.URLField(_("webstream URL"), max_length=1000, blank=True)
    webstream_seconds = models.FloatField(_("webstream length (s)"), null=True, blank=True)
    cue_in_seconds = models.FloatField(_("cue in (s)"), default=0)
    cue_out_seconds = models.FloatField(_("cue out (s)"), null=True, blank=True, help_text=_("Empty: play to the end."))

    studio_lookup = "playlist__studio"

    class Meta:
        ordering = ["playlist", "position", "id"]
        verbose_name = _("playlist item")
        verbose_name_plural = _("playlist items")
        constraints = [
            models.CheckConstraint(
                condition=(Q(asset__isnull=False) & Q(webstream_url=""))
                | (Q(asset__isnull=True) & ~Q(webstream_url="") & Q(webstream_seconds__gt=0)),
                name="playlist_item_media_or_webstream",
                violation_error_code="media_or_webstream",
                violation_error_message=_("An item is either a media file or a webstream with a length, not both."),
            ),
            models.CheckConstraint(
                condition=Q(cue_out_seconds__isnull=True) | Q(cue_out_seconds__gt=models.F("cue_in_seconds")),
                name="playlist_item_cue_out_after_cue_in",
                violation_error_code="cue_out_before_cue_in",
                violation_error_message=_("Cue out must come after cue in."),
            ),
        ]

    def __str__(self) -> str:
        return str(self.asset) if self.asset_id else self.webstream_url

    def clean(self) -> None:
        if self.asset_id and self.playlist_id and self.asset.studio_id != self.playlist.studio_id:
            raise ValidationError(
                {"asset": ValidationError(_("This media belongs to another studio."), code="asset_other_studio")}
            )
        validate_public_urls("webstream_url", [self.webstream_url] if self.webstream_url else [])

    @property
    def play_seconds(self) -> float | None:
        """How long this item plays, from its cues and its media's duration."""
        if not self.asset_id:
            return self.webstream_seconds
        end = self.cue_out_seconds if self.cue_out_seconds is not None else self.asset.duration_seconds
        if end is None:
            return None
        return max(0.0, end - self.cue_in_seconds)


class Channel(StudioStatusMachine, StudioOwnedModel):
    """A playout channel: one Liquidsoap engine on a node, fed by the channel's timeline."""

    class Status(models.TextChoices):
        STOPPED = "stopped", _("Stopped")  # not meant to be on air
        STARTING = "starting", _("Starting")  # placed on a node, engine coming up
        RUNNING = "running", _("Running")  # engine on air and answering probes
        ERROR = "error", _("Error")  # engine unreachable and not failed over; see error message

    class Output(models.TextChoices):
        HARBOR = "harbor", _("HTTP stream (Liquidsoap harbor)")
        ICECAST = "icecast", _("Icecast server")
        FILE = "file", _("File")
        HLS = "hls", _("HLS (segments on the node, served over HTTP)")
        DECKLINK = "decklink", _("SDI/Decklink (hardware, bound to its node)")

    # A file output writes to its node's disk for as long as the channel runs (WAV: 600 MB an hour):
    # superusers choose it, not a studio's staff, whose writes would fill the disk every studio records to.
    SUPERUSER_OUTPUTS = frozenset({Output.FILE})

    TRANSITIONS = {
        Status.STOPPED: frozenset({Status.STARTING}),
        Status.STARTING: frozenset({Status.RUNNING, Status.ERROR, Status.STOPPED, Status.STARTING}),
        Status.RUNNING: frozenset({Status.STARTING, Status.ERROR, Status.STOPPED}),
        Status.ERROR: frozenset({Status.STARTING, Status.STOPPED}),
    }

    studio = models.ForeignKey(Studio, on_delete=models.CASCADE, related_name="channels", verbose_name=_("studio"))
    name = models.CharField(_("name"), max_length=120)
    slug = models.SlugField(_("slug"), max_length=60, unique=True)
    node = models.ForeignKey(
        Node, on_delete=models.PROTECT, null=True, blank=True, related_name="channels", verbose_name=_("node"),
        help_text=_("Host the engine runs on now. Network outputs move to a healthy node on failure."),
    )
    output_type = models.CharField(_("output"), max_length=10, choices=Output.choices, default=Output.HARBOR)
    output_settings = models.JSONField(
        _("output settings"),
        default=dict,
        blank=True,
        help_text=_('Harbor: {"port": 8100, "mount": "live", "bitrate": 128}; Icecast: host, port, password, mount, '
                    'bitrate; file: format (mp3 or wav) and bitrate, written under the node\'s directory. '
                    'Settings left out take their defaults (mount live, bitrate 128, Icecast port 8000, format mp3).'),
    )
    loudness_target_lufs = models.FloatField(
        _("loudness target (LUFS)"), default=DEFAULT_LOUDNESS_TARGET,
        help_text=_("Each measured item plays at this integrated loudness, by gain in the engine (EBU R128: -23 for "
                    "broadcast, -16 or -14 for streams); from -40 to -5."),
    )
    dead_air_seconds = models.FloatField(
        _("dead air after (s)"), default=DEFAULT_DEAD_AIR_SECONDS,
        help_text=_("The output silent this long while an item, a webstream or the filler plays is dead air: the "
                    "engine moves on to the filler (or its next file) at once, the as-run log and an alert say so. "
                    "Media marked quiet on purpose and a paused channel are not dead air. From 1 to 300."),
    )
    silence_threshold_dbfs = models.FloatField(
        _("silence below (dBFS)"), default=DEFAULT_SILENCE_THRESHOLD,
        help_text=_("The output's level (RMS) under which it counts as silent; from -90 to -20."),
    )
    public_now_playing = models.BooleanField(
        _("publish now playing"), default=False,
        help_text=_("Anyone may read the title on air and the next one, with their times and nothing else, at the "
                    "channel's public now-playing addresses (JSON, and Server-Sent Events for websites)."),
    )
    fallback_playlist = models.ForeignKey(
        Playlist, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("fallback playlist"),
        help_text=_("Played when nothing is scheduled, so there is never dead air. Silence if empty."),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.STOPPED, db_index=True)
    paused = models.BooleanField(_("paused"), default=False, help_text=_("Paused channels put out silence."))
    skip_requested_at = models.DateTimeField(
        _("skip requested at"), null=True, blank=True, editable=False,
        help_text=_("Set by the skip action; the channel's agent takes the item on air off once per request."),
    )
    restart_count = models.PositiveIntegerField(_("restarts"), default=0)
    lease_epoch = models.PositiveBigIntegerField(
        _("lease epoch"), default=0, editable=False,
        help_text=_("Raised by the database each time the channel moves to another node, and when its node's agent "
                    "restarts: an agent's writes carry the epoch it started the engine with (station.fencing)."),
    )
    last_heartbeat_at = models.DateTimeField(_("last healthy probe"), null=True, blank=True)
    error_message = models.TextField(_("error"), blank=True)
    live_input_port = models.PositiveIntegerField(
        _("live input port"), null=True, blank=True,
        help_text=_("Presenters of live shows connect their source client (BUTT, Mixxx, ffmpeg: the Icecast source "
                    "protocol) to this port of the channel's node, mount /%(mount)s, with the credentials of their "
                    "show. Empty: the channel takes no live source.") % {"mount": LIVE_MOUNT},
    )
    live_grace_seconds = models.FloatField(
        _("live grace (s)"), default=DEFAULT_LIVE_GRACE_SECONDS,
        help_text=_("A live source that drops is waited for this long (silence) before the schedule or the filler "
                    "comes back and the desk is alerted; a reconnect within the slot takes over again. From 0.5 to 60."),
    )


    class Meta(StudioOwnedModel.Meta):
        verbose_name = _("channel")
        verbose_name_plural = _("channels")
        constraints = [
            # Two engines can't listen on one port: a second channel there would take the first off air.
            models.UniqueConstraint(
                KT("output_settings__port"), condition=Q(output_type="harbor"), name="channel_harbor_port_unique",
                violation_error_code="harbor_port_taken",
                violation_error_message=_("Another channel already streams on this harbor port."),
            ),
            models.UniqueConstraint(
                fields=["live_input_port"], name="channel_live_input_port_unique",
                violation_error_code="live_input_port_taken",
                violation_error_message=_("Another channel already takes live sources on this port."),
            ),
            InRange("live_grace_seconds", lower=LIVE_GRACE_LIMITS[0], upper=LIVE_GRACE_LIMITS[1],
                    name="channel_live_grace_in_range", violation_error_code="live_grace_out_of_range",
                    violation_error_message=_("A live source is waited for 0.5 to 60 seconds.")),
            InRange("loudness_target_lufs", lower=LOUDNESS_TARGETS[0], upper=LOUDNESS_TARGETS[1],
                    name="channel_loudness_target_in_range", violation_error_code="loudness_target_out_of_range",
                    violation_error_message=_("A loudness target is from -40 to -5 LUFS.")),
            InRange("dead_air_seconds", lower=DEAD_AIR_LIMITS[0], upper=DEAD_AIR_LIMITS[1],
                    name="channel_dead_air_seconds_in_range", violation_error_code="dead_air_seconds_out_of_range",
                    violation_error_message=_("Dead air is declared after 1 to 300 seconds of silence.")),
            InRange("silence_threshold_dbfs", lower=SILENCE_THRESHOLDS[0], upper=SILENCE_THRESHOLDS[1],
                    name="channel_silence_threshold_in_range", violation_error_code="silence_threshold_out_of_range",
                    violation_error_message=_("A silence threshold is from -90 to -20 dBFS.")),
        ]

    def clean(self) -> None:
        try:
            clean_output_settings(self.output_type, self.output_settings)
        except ValidationError as error:
            raise ValidationError({"output_settings": error.error_list}) from error
        if self.fallback_playlist_id and self.studio_id and self.fallback_playlist.studio_id != self.studio_id:
            raise ValidationError(
                {"fallback_playlist": ValidationError(_("The fallback playlist belongs to another studio."),
                                                      code="playlist_other_studio")}
            )
        if self.live_input_port is not None:
            self._clean_live_input_port()

    def _clean_live_input_port(self) -> None:
        """In the ports the station opens, and no channel's harbor output (this one's included): one port, one
        listener, and the presenters' mount apart from the listeners'."""
        ports = harbor_ports()
        if self.live_input_port not in ports:
            raise ValidationError({"live_input_port": ValidationError(
                _("A live input listens on a port from %(low)d to %(high)d."), code="live_input_port_out_of_range",
                params={"low": ports.start, "high": ports.stop - 1})})
        harbor = Channel.objects.filter(output_type=Channel.Output.HARBOR,
                                        output_settings__port=self.live_input_port).exclude(pk=self.pk)
        own_port = self.output_settings.get("port") if self.output_type == Channel.Output.HARBOR else None
        if harbor.exists() or own_port == self.live_input_port:
            raise ValidationError({"live_input_port": ValidationError(
                _("A harbor output streams to listeners on this port; live sources take another."),
                code="live_input_port_taken")})

    @property
    def output(self) -> Output:
        """Return its output's backend; a type written around the model has the defaults (its agent refuses it)."""
        return OUTPUTS.get(self.output_type, Output())

    @property
    def is_hardware(self) -> bool:
        """Hardware outputs are bound to their host: failures alert instead of failing over."""
        return self.output.hardware

    @property
    def required_capability(self) -> str:
        return self.output.needs_capability

    @property
    def listener_url(self) -> str | None:
        """Where listeners get the channel from its output, if the output has such a place (HLS)."""
        try:
            return self.output.listener_url(self, self.output.clean(self.output_settings))
        except ValidationError:
            return None


class Show(ShownByName, RecurringWindow, StudioScopedModel, TimeStampedModel):
    """A programme on a channel; its windows become show instances on the channel's timeline."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="shows", verbose_name=_("channel"))
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    playlist = models.ForeignKey(
        Playlist, on_delete=models.PROTECT, null=True, blank=True, related_name="shows", verbose_name=_("playlist"),
        help_text=_("What each instance plays unless the instance has its own."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    record_air = models.BooleanField(
        _("record what goes to air"), default=False,
        help_text=_("Each instance is recorded from the channel's own output, live or automated, cut to the slot "
                    "(its first and last frames): a media asset listed under the show's recordings."),
    )
    live_margin_seconds = models.PositiveIntegerField(
        _("live credentials margin (s)"), default=DEFAULT_LIVE_MARGIN_SECONDS,
        validators=[MaxValueValidator(MAX_LIVE_MARGIN_SECONDS)],
        help_text=_("Its presenters' credentials let them connect this long before each slot (to check their "
                    "sound; the air is theirs from the slot's start) and after it. At most an hour."),
    )

    studio_lookup = "channel__studio"

    class Meta:
        ordering = ["name"]
        verbose_name = _("show")
        verbose_name_plural = _("shows")
        constraints = [
            *recurring_window_checks("show", ends_after_start=_("A show must end after it starts.")),
            InRange("live_margin_seconds", lower=0, upper=MAX_LIVE_MARGIN_SECONDS, name="show_live_margin_in_range",
                    violation_error_code="live_margin_out_of_range",
                    violation_error_message=_("Live credentials work at most an hour before and after a slot.")),
        ]

    def clean(self) -> None:
        super().clean()
        if self.channel_id and self.playlist_id and self.playlist.studio_id != self.channel.studio_id:
            raise ValidationError(
                {"playlist": ValidationError(_("The playlist belongs to another studio."), code="playlist_other_studio")}
            )

    def studio_zone(self):
        return self.channel.studio.zone


class ShowInstance(StudioScopedModel, TimeStampedModel):
    """A show's slot on a channel's timeline: no two overlap on one channel."""

    show = models.ForeignKey(Show, on_delete=models.CASCADE, related_name="instances", verbose_name=_("show"))
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="instances", verbose_name=_("channel"))
    start_at = models.DateTimeField(_("starts at"))
    end_at = models.DateTimeField(_("ends at"))
    playlist = models.ForeignKey(
        Playlist, on_delete=models.PROTECT, null=True, blank=True, related_name="instances", verbose_name=_("playlist"),
        help_text=_("Empty: the show's playlist."),
    )
    cancelled = models.BooleanField(_("cancelled"), default=False)
    # The series window the slot was made from (empty for one added by hand): a slot moved by hand keeps it, so the
    # series does not make that window again, and a slot still at it follows the show when its times are changed.
    occurrence_start_at = models.DateTimeField(_("made for the series window starting"), null=True, editable=False)
    occurrence_end_at = models.DateTimeField(_("made for the series window ending"), null=True, editable=False)

    studio_lookup = "channel__studio"

    class Meta:
        ordering = ["start_at"]
        verbose_name = _("show instance")
        verbose_name_plural = _("show instances")
        constraints = [
            end_after_start(name="show_instance_end_after_start", message=_("A show must end after it starts.")),
            instants_in_range("start_at", "end_at", name="show_instance_dates_in_range"),
            no_overlap(
                name="show_instance_no_overlap",
                owner="channel",
                condition=Q(cancelled=False),
                code="show_overlap",
                message=_("This show overlaps another show on the same channel."),
            ),
        ]
        indexes = [models.Index(fields=["channel", "start_at"], name="show_instance_timeline_idx")]

    def __str__(self) -> str:
        return f"{self.show} {self.start_at:%Y-%m-%d %H:%M} UTC"

    def clean(self) -> None:
        if self.show_id and self.channel_id and self.show.channel.studio_id != self.channel.studio_id:
            raise ValidationError(
                {"channel": ValidationError(_("The channel belongs to another studio."), code="channel_other_studio")}
            )
        if self.playlist_id and self.channel_id and self.playlist.studio_id != self.channel.studio_id:
            raise ValidationError(
                {"playlist": ValidationError(_("The playlist belongs to another studio."), code="playlist_other_studio")}
            )

    @property
    def effective_playlist(self) -> Playlist | None:
        return self.playlist or self.show.playlist

    @property
    def follows_its_series(self) -> bool:
        """Made from a series window and still at it: not moved or resized by hand since."""
        return self.occurrence_start_at is not None and (self.start_at, self.end_at) == (
            self.occurrence_start_at, self.occurrence_end_at)


class ScheduledItem(StudioScopedModel):
    """One item at its exact time on a channel's timeline: what the dispatcher plays."""

    instance = models.ForeignKey(ShowInstance, on_delete=models.CASCADE, related_name="items", verbose_name=_("show instance"))
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="scheduled_items", verbose_name=_("channel"))
    playlist_item = models.ForeignKey(
        PlaylistItem, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("playlist item")
    )
    asset = models.ForeignKey(
        "ingest.MediaAsset", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("media")
    )
    webstream_url = models.URLField(_("webstream URL"), max_length=1000, blank=True)
    title = models.CharField(_("title"), max_length=300)
    start_at = models.DateTimeField(_("starts at"))
    end_at = models.DateTimeField(_("ends at"))
    cue_in_seconds = models.FloatField(_("cue in (s)"), default=0)

    studio_lookup = "channel__studio"

    class Meta:
        ordering = ["start_at"]
        verbose_name = _("scheduled item")
        verbose_name_plural = _("scheduled items")
        constraints = [
            end_after_start(name="scheduled_item_end_after_start", message=_("An item must end after it starts.")),
            no_overlap(
                name="scheduled_item_no_overlap",
                owner="channel",
                code="item_overlap",
                message=_("Two items overlap on the same channel."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} @ {self.start_at:%H:%M:%S}"


class AsRunEntry(StudioScopedModel):
    """What really went on air: one open row per channel, closed when the item changes."""

    class Result(models.TextChoices):
        PLAYED = "played", _("Played")
        SKIPPED = "skipped", _("Skipped")  # taken off air early by an operator
        FAILED = "failed", _("Failed")  # could not be played
        FALLBACK = "fallback", _("Fallback")  # nothing scheduled; the filler played
        PAUSED = "paused", _("Paused")  # an operator paused the channel: silence on purpose
        DEAD_AIR = "dead_air", _("Dead air")  # the output silent while something should play, until the engine moved on
        LIVE = "live", _("Live")  # a presenter's source on air (presenter says who)
        LIVE_LOST = "live_lost", _("Live source lost")  # silence while the grace time waits for the presenter

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="as_run", verbose_name=_("channel"))
    asset = models.ForeignKey(
        "ingest.MediaAsset", on_delete=models.SET_NULL, null=True, blank=True, related_name="as_run", verbose_name=_("media")
    )
    scheduled_item = models.ForeignKey(
        ScheduledItem, on_delete=models.SET_NULL, null=True, blank=True, related_name="as_run", verbose_name=_("scheduled item")
    )
    title = models.CharField(_("title"), max_length=300)
    started_at = models.DateTimeField(_("started at"), db_index=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    duration_seconds = models.FloatField(_("duration (s)"), null=True, blank=True)
    result = models.CharField(_("result"), max_length=10, choices=Result.choices, default=Result.PLAYED)
    presenter = models.CharField(_("presenter"), max_length=120, blank=True,
                                 help_text=_("Who was live, for live segments."))
    live_credential = models.ForeignKey(
        "LiveCredential", on_delete=models.SET_NULL, null=True, blank=True, related_name="as_run",
        verbose_name=_("live credential"),
    )
    node = models.ForeignKey(Node, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("node"))

    studio_lookup = "channel__studio"

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("as-run entry")
        verbose_name_plural = _("as-run log")
        constraints = [
            models.UniqueConstraint(
                fields=["channel"],
                condition=Q(ended_at__isnull=True),
                name="as_run_one_open_row_per_channel",
                violation_error_code="as_run_already_open",
                violation_error_message=_("This channel already has an open as-run row."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel}: {self.title} {self.started_at:%Y-%m-%d %H:%M:%S}"


class LiveCredential(StudioScopedModel, TimeStampedModel):
    """What one presenter of a live show gives their source client: a user name and a password, valid during the
    show's slots (and its margin) until revoked. Only the password's hash is kept; it is shown once, when issued."""

    show = models.ForeignKey(Show, on_delete=models.CASCADE, related_name="live_credentials", verbose_name=_("show"))
    presenter = models.CharField(_("presenter"), max_length=120, help_text=_("Who connects with it."))
    username = models.SlugField(
        _("user name"), max_length=60, default="source",
        help_text=_("What the source client sends as its user (Icecast's default, source, works for one presenter "
                    "of a show; name them apart when a show has several)."),
    )
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True, editable=False)

    studio_lookup = "show__channel__studio"

    class Meta:
        ordering = ["show", "presenter"]
        verbose_name = _("live credential")
        verbose_name_plural = _("live credentials")
        constraints = [
            models.UniqueConstraint(fields=["show", "username"], condition=Q(revoked_at__isnull=True),
                                    name="live_credential_username_unique_in_show",
                                    violation_error_code="live_username_taken",
                                    violation_error_message=_("A presenter of this show already has this user name.")),
        ]

    def __str__(self) -> str:
        return f"{self.presenter} ({self.show})"


class ShowRecording(StudioStatusMachine, TimeStampedModel):
    """What one instance of a show put on air, recorded from its channel's output and cut to the slot."""

    class Status(models.TextChoices):
        RECORDING = "recording", _("Recording")  # its engine writes the slot's frames
        COMPLETED = "completed", _("Completed")  # the asset holds the slot
        FAILED = "failed", _("Failed")  # see error message

    TRANSITIONS = {
        Status.RECORDING: frozenset({Status.COMPLETED, Status.FAILED}),
        Status.COMPLETED: frozenset(),
        Status.FAILED: frozenset(),
    }

    show = models.ForeignKey(Show, on_delete=models.CASCADE, related_name="recordings", verbose_name=_("show"))
    instance = models.OneToOneField(ShowInstance, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="recording", verbose_name=_("show instance"))
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="show_recordings",
                                verbose_name=_("channel"))
    slot_start = models.DateTimeField(_("slot starts"))
    slot_end = models.DateTimeField(_("slot ends"))
    started_at = models.DateTimeField(_("first sample at"), null=True, blank=True,
                                      help_text=_("The instant of the recording's first sample, on the channel's "
                                                  "output (its first frame at or after the slot's start)."))
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    asset = models.ForeignKey("ingest.MediaAsset", on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="show_recordings", verbose_name=_("media"))
    node = models.ForeignKey(Node, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                             verbose_name=_("node"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.RECORDING,
                              db_index=True)
    error_message = models.TextField(_("error"), blank=True)

    studio_lookup = "channel__studio"

    class Meta:
        ordering = ["-slot_start"]
        verbose_name = _("show recording")
        verbose_name_plural = _("show recordings")

    def __str__(self) -> str:
        return f"{self.show} {self.slot_start:%Y-%m-%d %H:%M} UTC"


def new_feed_token() -> str:
    return secrets.token_urlsafe(32)


class Podcast(StudioScopedModel, TimeStampedModel):
    """A show's podcast: each of its recordings from the air becomes an episode of its RSS feed."""

    # Apple Podcasts' top-level categories, the ones podcast apps file a show under.
    CATEGORIES = ("Arts", "Business", "Comedy", "Education", "Fiction", "Government", "Health & Fitness", "History",
                  "Kids & Family", "Leisure", "Music", "News", "Religion & Spirituality", "Science",
                  "Society & Culture", "Sports", "Technology", "True Crime", "TV & Film")

    show = models.OneToOneField(Show, on_delete=models.CASCADE, related_name="podcast", verbose_name=_("show"))
    public = models.BooleanField(
        _("public"), default=False,
        help_text=_("Anyone may read the feed and its episodes; otherwise only with the podcast's token (its address "
                    "in the admin)."))
    token = models.CharField(_("token"), max_length=64, default=new_feed_token, editable=False)
    author = models.CharField(_("author"), max_length=200, blank=True)
    image_url = models.URLField(
        _("artwork URL"), max_length=500, blank=True,
        help_text=_("Square artwork, 1400 to 3000 pixels (JPEG or PNG), as podcast directories ask."))
    category = models.CharField(_("category"), max_length=40, default="Music",
                                choices=[(category, category) for category in CATEGORIES])
    explicit = models.BooleanField(_("explicit"), default=False)
    language = models.CharField(_("language"), max_length=12, default="en",
                                help_text=_("The language of its episodes (RFC 5646: en, en-GB, fr)."))

    studio_lookup = "show__channel__studio"

    class Meta:
        ordering = ["show"]
        verbose_name = _("podcast")
        verbose_name_plural = _("podcasts")

    def __str__(self) -> str:
        return str(self.show)

    def clean(self) -> None:
        if self.show_id and not self.show.record_air:
            raise ValidationError({"show": ValidationError(
                _("A podcast's episodes are its show's recordings from the air: mark the show recorded first."),
                code="podcast_needs_recordings")})


class Episode(StudioStatusMachine, TimeStampedModel):
    """One recording of a show, made into a podcast episode: trimmed, at the podcast loudness, with chapters."""

    class Status(models.TextChoices):
        MAKING = "making", _("Making")  # a worker trims, measures and encodes it
        READY = "ready", _("Ready")  # in the feed, if published
        FAILED = "failed", _("Failed")  # see error message

    TRANSITIONS = {
        Status.MAKING: frozenset({Status.READY, Status.FAILED}),
        Status.READY: frozenset(),
        Status.FAILED: frozenset({Status.MAKING}),
    }

    podcast = models.ForeignKey(Podcast, on_delete=models.CASCADE, related_name="episodes", verbose_name=_("podcast"))
    recording = models.OneToOneField(ShowRecording, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="episode", verbose_name=_("recording"))
    guid = models.UUIDField(_("GUID"), default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(_("title"), max_length=300)
    description = models.TextField(_("description"), blank=True)
    published = models.BooleanField(_("published"), default=True,
                                    help_text=_("In the feed. Unpublished, it is kept but listed nowhere."))
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)
    asset = models.ForeignKey("ingest.MediaAsset", on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="episodes", verbose_name=_("media"), editable=False)
    duration_seconds = models.FloatField(_("duration (s)"), null=True, blank=True, editable=False)
    chapters = models.JSONField(_("chapters"), default=list, blank=True, editable=False,
                                help_text=_("[start seconds, title] of each item on air, from the as-run log."))
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.MAKING, db_index=True)
    error_message = models.TextField(_("error"), blank=True)

    studio_lookup = "podcast__show__channel__studio"

    class Meta:
        ordering = ["-published_at", "-created_at"]
        verbose_name = _("episode")
        verbose_name_plural = _("episodes")

    def __str__(self) -> str:
        return self.title
