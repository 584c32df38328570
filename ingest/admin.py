from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from ingest.models import Download, IngestSource, MediaAsset, PreviousDownload
from station.admin_base import StudioScopedAdmin, scoped_filter


@admin.register(MediaAsset)
class MediaAssetAdmin(StudioScopedAdmin):
    list_display = ["title", "studio", "status", "origin", "duration_seconds", "format_name", "size_bytes", "created_at"]
    list_filter = ["status", "origin", scoped_filter("studio")]
    search_fields = ["title", "checksum"]
    date_hierarchy = "created_at"
    readonly_fields = ["status", "checksum", "size_bytes", "duration_seconds", "format_name", "error_message", "created_at", "updated_at"]


@admin.register(IngestSource)
class IngestSourceAdmin(StudioScopedAdmin):
    list_display = ["name", "studio", "kind", "enabled", "poll_interval_minutes", "last_polled_at", "next_poll_at"]
    list_filter = ["kind", "enabled", scoped_filter("studio")]
    search_fields = ["name", "url"]
    readonly_fields = ["last_polled_at", "next_poll_at", "last_error"]


@admin.register(Download)
class DownloadAdmin(StudioScopedAdmin):
    list_display = ["__str__", "source", "status", "percent", "attempts", "updated_at"]
    list_filter = ["status", scoped_filter("source__studio"), scoped_filter("source")]
    search_fields = ["title", "url", "item_key"]
    readonly_fields = ["status", "bytes_done", "bytes_total", "attempts", "error_message", "asset"]

    @admin.display(description=_("progress"))
    def percent(self, download):
        progress = download.progress
        return "—" if progress is None else f"{progress:.0%}"


@admin.register(PreviousDownload)
class PreviousDownloadAdmin(StudioScopedAdmin):
    list_display = ["item_key", "source", "downloaded_at"]
    list_filter = [scoped_filter("source__studio"), scoped_filter("source")]
    search_fields = ["item_key"]
