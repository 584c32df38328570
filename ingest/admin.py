from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from ingest import services
from ingest.models import Download, IngestSource, MediaAsset, PreviousDownload, Publication
from station.admin_base import StudioScopedAdmin, row_action, scoped_filter, service_action


@admin.register(MediaAsset)
class MediaAssetAdmin(StudioScopedAdmin):
    list_display = ["title", "studio", "status", "origin", "duration_seconds", "loudness_lufs", "format_name", "size_bytes",
                    "created_at"]
    list_filter = ["status", "origin", scoped_filter("studio")]
    search_fields = ["title", "checksum"]
    date_hierarchy = "created_at"
    readonly_fields = ["status", "checksum", "size_bytes", "duration_seconds", "format_name", "loudness_lufs",
                       "loudness_range_lu", "true_peak_dbtp", "loudness_measured_at", "error_message", "created_at",
                       "updated_at"]
    actions = ["publish"]

    publish = row_action(_("Publish selected media to the archive"), services.publication_queue, "asset")


@admin.register(IngestSource)
class IngestSourceAdmin(StudioScopedAdmin):
    list_display = ["name", "studio", "kind", "enabled", "poll_interval_minutes", "last_polled_at", "next_poll_at", "last_error"]
    list_filter = ["kind", "enabled", scoped_filter("studio")]
    search_fields = ["name", "url"]
    readonly_fields = ["last_polled_at", "next_poll_at", "last_error"]
    actions = ["poll_now"]

    poll_now = row_action(_("Poll selected sources now"), services.source_poll_soon, "source")


@admin.register(Download)
class DownloadAdmin(StudioScopedAdmin):
    list_display = ["__str__", "source", "status", "percent", "size", "attempts", "error_message", "updated_at"]
    list_filter = ["status", scoped_filter("source__studio"), scoped_filter("source")]
    search_fields = ["title", "url", "item_key"]
    list_select_related = ["source"]
    readonly_fields = ["status", "bytes_done", "bytes_total", "attempts", "error_message", "asset"]
    actions = ["retry"]

    @admin.display(description=_("progress"))
    def percent(self, download):
        progress = download.progress
        return "—" if progress is None else f"{progress:.0%}"

    @admin.display(description=_("downloaded"))
    def size(self, download):
        done = f"{download.bytes_done / 2**20:.1f}"
        return f"{done} / {download.bytes_total / 2**20:.1f} MB" if download.bytes_total else f"{done} MB"

    retry = row_action(_("Retry selected failed downloads"), services.download_retry, "download")


@admin.register(PreviousDownload)
class PreviousDownloadAdmin(StudioScopedAdmin):
    list_display = ["item_key", "source", "downloaded_at"]
    list_filter = [scoped_filter("source__studio"), scoped_filter("source")]
    search_fields = ["item_key"]


@admin.register(Publication)
class PublicationAdmin(StudioScopedAdmin):
    """Publications are made by ingest and the publish action; people watch them and send them again."""

    list_display = ["asset", "status", "attempts", "next_attempt_at", "published_at", "last_error"]
    list_filter = ["status", scoped_filter("asset__studio")]
    search_fields = ["asset__title"]
    list_select_related = ["asset"]
    readonly_fields = ["asset", "status", "attempts", "next_attempt_at", "published_at", "last_error"]
    actions = ["publish_again"]

    def has_add_permission(self, request):
        return False

    @service_action(_("Publish selected again"))
    def publish_again(publication, request):
        services.publication_queue(asset=publication.asset)
