from rest_framework import serializers

from ingest.models import Download, IngestSource, MediaAsset
from station.api.base import StationModelSerializer


class MediaAssetSerializer(StationModelSerializer):
    class Meta:
        model = MediaAsset
        fields = ["id", "studio", "title", "status", "origin", "checksum", "size_bytes", "duration_seconds",
                  "format_name", "loudness_lufs", "loudness_range_lu", "true_peak_dbtp", "loudness_measured_at",
                  "intentionally_quiet", "error_message", "created_at", "updated_at"]
        read_only_fields = [name for name in fields if name not in ("title", "intentionally_quiet")]


class MediaUploadSerializer(StationModelSerializer):
    file = serializers.FileField(help_text="The media file; ffprobe must be able to read it.")

    class Meta:
        model = MediaAsset
        fields = ["studio", "title", "file"]
        extra_kwargs = {"title": {"required": False, "help_text": "Default: the file's name."}}


class IngestSourceSerializer(StationModelSerializer):
    class Meta:
        model = IngestSource
        fields = ["id", "studio", "name", "kind", "url", "url_list", "poll_interval_minutes", "enabled",
                  "remember_downloads", "next_poll_at", "last_polled_at", "last_error", "created_at", "updated_at"]
        read_only_fields = ["next_poll_at", "last_polled_at", "last_error"]


class DownloadSerializer(StationModelSerializer):
    progress = serializers.FloatField(read_only=True, allow_null=True, help_text="Fraction downloaded, when the size is known.")

    class Meta:
        model = Download
        fields = ["id", "source", "item_key", "url", "title", "status", "bytes_done", "bytes_total", "progress",
                  "attempts", "error_message", "asset", "created_at", "updated_at"]
        read_only_fields = fields
