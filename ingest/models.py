from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from station.models import Studio, StudioOwnedModel, StudioScopedModel, StudioStatusMachine, TimeStampedModel
from station.outbound import validate_public_urls


MAX_LISTED_URLS = 500


def is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class MediaAsset(StudioStatusMachine, TimeStampedModel):
    """A media file in the library: recorded, downloaded or uploaded."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")  # row exists, file not there yet
        LIVE = "live", _("Live")  # still growing (a recording in progress)
        READY = "ready", _("Ready")  # complete, probed, playable
        ERROR = "error", _("Error")  # incomplete or invalid; see error message

    class Origin(models.TextChoices):
        RECORDING = "recording", _("Recording")
        INGEST = "ingest", _("Ingest")
        UPLOAD = "upload", _("Upload")
        GENERATED = "generated", _("Generated")

    TRANSITIONS = {
        Status.PENDING: frozenset({Status.LIVE, Status.READY, Status.ERROR}),
        Status.LIVE: frozenset({Status.READY, Status.ERROR}),
        Status.READY: frozenset({Status.ERROR}),
        Status.ERROR: frozenset({Status.READY}),
    }

    studio = models.ForeignKey(Studio, on_delete=models.CASCADE, related_name="assets", verbose_name=_("studio"))
    title = models.CharField(_("title"), max_length=300)
    file = models.FileField(_("file"), upload_to="library/%Y/%m/", max_length=500, blank=True)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.PENDING, db_index=True)
    origin = models.CharField(_("origin"), max_length=10, choices=Origin.choices, default=Origin.UPLOAD)
    checksum = models.CharField(_("SHA-256"), max_length=64, blank=True)
    size_bytes = models.BigIntegerField(_("size (bytes)"), null=True, blank=True)
    duration_seconds = models.FloatField(_("duration (s)"), null=True, blank=True)
    format_name = models.CharField(_("format"), max_length=60, blank=True)
    error_message = models.TextField(_("error"), blank=True)
    # EBU R128, measured once per file by the ingest queue (ingest.services.loudness); empty until then
    loudness_lufs = models.FloatField(_("integrated loudness (LUFS)"), null=True, blank=True)
    loudness_range_lu = models.FloatField(_("loudness range (LU)"), null=True, blank=True)
    true_peak_dbtp = models.FloatField(_("true peak (dBTP)"), null=True, blank=True)
    loudness_measured_at = models.DateTimeField(
        _("loudness measured at"), null=True, blank=True,
        help_text=_("Set once measured; a file whose loudness could not be measured has it set and no figures."))
    loudness_lease_until = models.DateTimeField(null=True, blank=True, editable=False)  # a worker measures it until then
    intentionally_quiet = models.BooleanField(
        _("quiet on purpose"), default=False,
        help_text=_("Its long silences are part of the programme (a minute's silence, a quiet passage): on air they "
                    "are not dead air, and the engine plays them through."))

    studio_lookup = "studio"

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("media asset")
        verbose_name_plural = _("media assets")
        indexes = [
            models.Index(fields=["studio", "checksum"], name="media_asset_checksum_idx"),  # identical content
            # the few a tick queues for measuring, among a library of any size
            models.Index(fields=["loudness_lease_until"], condition=Q(status="ready", loudness_measured_at__isnull=True),
                         name="media_asset_unmeasured_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="ready") | Q(duration_seconds__gt=0),
                name="media_asset_ready_has_duration",
                violation_error_code="ready_without_duration",
                violation_error_message=_("A ready asset must have a duration."),
            )
        ]

    def __str__(self) -> str:
        return self.title


class IngestSource(StudioOwnedModel):
    """A podcast feed or URL list polled for new media."""

    class Kind(models.TextChoices):
        FEED = "feed", _("RSS/Atom feed (enclosures)")
        URL_LIST = "url_list", _("URL list")

    studio = models.ForeignKey(Studio, on_delete=models.CASCADE, related_name="ingest_sources", verbose_name=_("studio"))
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.FEED)
    url = models.URLField(_("feed URL"), max_length=1000, blank=True)
    url_list = models.TextField(_("URLs"), blank=True, help_text=_("For a URL list: one media URL per line."))
    poll_interval_minutes = models.PositiveIntegerField(
        _("poll every (minutes)"), default=60, validators=[MinValueValidator(1)]
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    remember_downloads = models.BooleanField(
        _("remember downloads"), default=True, help_text=_("Never fetch an item again once it was downloaded.")
    )
    next_poll_at = models.DateTimeField(_("next poll at"), null=True, blank=True)
    last_polled_at = models.DateTimeField(_("last polled at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta(StudioOwnedModel.Meta):
        verbose_name = _("ingest source")
        verbose_name_plural = _("ingest sources")
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="feed") | ~Q(url=""),
                name="ingest_source_feed_has_url",
                violation_error_code="feed_without_url",
                violation_error_message=_("A feed source needs its feed URL."),
            )
        ]

    def clean(self) -> None:
        """Refuse what no poll could fetch: a non-http(s) feed or list line, or a list with no URL."""
        super().clean()
        if self.url and not is_http_url(self.url):
            raise ValidationError({"url": _("Only http(s) feeds can be polled.")}, code="bad_url")
        bad = [url for url in self.listed_urls() if not is_http_url(url)]
        if bad:
            raise ValidationError({"url_list": _("Only http(s) URLs can be downloaded: %(url)s") % {"url": bad[0]}},
                                  code="bad_url")
        if len(self.listed_urls()) > MAX_LISTED_URLS:
            raise ValidationError({"url_list": ValidationError(
                _("A URL list holds at most %(max)d URLs."), code="too_many_urls", params={"max": MAX_LISTED_URLS})})
        validate_public_urls("url", [self.url] if self.url else [])
        # A list's names are not looked up one by one here (hundreds of them, each up to the resolver's
        # deadline): address literals are judged now, names when each download connects.
        validate_public_urls("url_list", self.listed_urls(), resolve_now=False)
        if self.kind == self.Kind.URL_LIST and not self.listed_urls():
            raise ValidationError({"url_list": _("A URL list needs at least one URL.")}, code="empty_url_list")

    def listed_urls(self) -> list[str]:
        """The URL list's entries: its non-empty lines that are not # comments."""
        return [line.strip() for line in self.url_list.splitlines() if line.strip() and not line.strip().startswith("#")]


class Download(StudioStatusMachine, TimeStampedModel):
    """One item of a source being fetched."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        DOWNLOADING = "downloading", _("Downloading")
        COMPLETED = "completed", _("Completed")  # the asset is ready
        FAILED = "failed", _("Failed")  # see error message; may be retried
        SKIPPED = "skipped", _("Skipped")  # already in the library (same URL): linked to that asset

    TRANSITIONS = {
        Status.QUEUED: frozenset({Status.DOWNLOADING, Status.SKIPPED, Status.FAILED}),
        # A row left downloading by a dead worker is claimed again by the one that holds the item's lock.
        Status.DOWNLOADING: frozenset({Status.COMPLETED, Status.SKIPPED, Status.FAILED, Status.QUEUED, Status.DOWNLOADING}),
        # A source that does not remember its downloads fetches a finished item again on its next poll.
        Status.COMPLETED: frozenset({Status.QUEUED}),
        Status.FAILED: frozenset({Status.QUEUED}),
        Status.SKIPPED: frozenset({Status.QUEUED}),
    }

    source = models.ForeignKey(IngestSource, on_delete=models.CASCADE, related_name="downloads", verbose_name=_("source"))
    item_key = models.CharField(_("item key"), max_length=500, help_text=_("The item's GUID or URL in its source."))
    url = models.URLField(_("URL"), max_length=2000)
    title = models.CharField(_("title"), max_length=300, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    bytes_done = models.BigIntegerField(_("bytes downloaded"), default=0)
    bytes_total = models.BigIntegerField(_("bytes in all"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    error_message = models.TextField(_("error"), blank=True)
    asset = models.ForeignKey(
        MediaAsset, on_delete=models.SET_NULL, null=True, blank=True, related_name="downloads", verbose_name=_("asset")
    )

    studio_lookup = "source__studio"

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("download")
        verbose_name_plural = _("downloads")
        constraints = [models.UniqueConstraint(fields=["source", "item_key"], name="download_item_unique_in_source")]
        indexes = [
            models.Index(fields=["url"], name="download_url_idx"),  # the same item in other sources
            models.Index(fields=["updated_at"], name="download_updated_idx"),  # downloads lately busy (loudness waits)
        ]

    def __str__(self) -> str:
        return self.title or self.url

    @property
    def progress(self) -> float | None:
        """Fraction downloaded, when the total size is known."""
        if not self.bytes_total:
            return None
        return min(1.0, self.bytes_done / self.bytes_total)


class PreviousDownload(StudioScopedModel):
    """An item once downloaded from a source, so it is never fetched again."""

    source = models.ForeignKey(
        IngestSource, on_delete=models.CASCADE, related_name="previous_downloads", verbose_name=_("source")
    )
    item_key = models.CharField(_("item key"), max_length=500)
    downloaded_at = models.DateTimeField(_("downloaded at"), auto_now_add=True)

    studio_lookup = "source__studio"

    class Meta:
        verbose_name = _("previous download")
        verbose_name_plural = _("previous downloads")
        constraints = [models.UniqueConstraint(fields=["source", "item_key"], name="previous_download_unique")]

    def __str__(self) -> str:
        return self.item_key


class Publication(StudioStatusMachine, TimeStampedModel):
    """An asset sent to the external archive (PUBLISH_URL), retried with exponential backoff."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")  # waiting for its next attempt (next attempt at)
        PUBLISHED = "published", _("Published")  # the archive accepted it
        FAILED = "failed", _("Failed")  # gave up after the last allowed attempt; see last error

    TRANSITIONS = {
        # Publishing again (a changed asset, staff asking) starts over from any state.
        Status.PENDING: frozenset({Status.PUBLISHED, Status.FAILED, Status.PENDING}),
        Status.PUBLISHED: frozenset({Status.PENDING}),
        Status.FAILED: frozenset({Status.PENDING}),
    }

    asset = models.OneToOneField(MediaAsset, on_delete=models.CASCADE, related_name="publication", verbose_name=_("asset"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    studio_lookup = "asset__studio"

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("publication")
        verbose_name_plural = _("publications")
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="publication_due_idx")]

    def __str__(self) -> str:
        return str(self.asset)
