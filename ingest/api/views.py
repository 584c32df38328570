from pathlib import Path

from django.conf import settings
from django.http import FileResponse
from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, parsers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from ingest import services
from ingest.api.serializers import DownloadSerializer, IngestSourceSerializer, MediaAssetSerializer, MediaUploadSerializer
from ingest.models import Download, IngestSource, MediaAsset
from ingest.uploads import asset_upload
from station.api.base import RowListMixin, StudioScopedViewSet
from station.api.filters import StationFilterSet
from station.api.errors import ErrorSerializer
from station.api.parsers import StationJSONParser


class MediaFilter(StationFilterSet):
    # By id: ingest knows recordings only as the rows that point at its assets (no recorder is looked up, so
    # another studio's id and a missing one both find nothing here).
    recorder = filters.NumberFilter(field_name="recording_session__recorder_id", help_text="Media this recorder recorded.")
    schedule = filters.NumberFilter(field_name="recording_session__schedule_id", help_text="What this window recorded.")

    class Meta:
        model = MediaAsset
        fields = ["studio", "status", "origin", "checksum"]


@extend_schema_view(
    create=extend_schema(
        summary="Upload a media file",
        description="Multipart upload: the file is stored in the library and probed with ffprobe; it becomes a `ready` "
        "asset with its duration and format. A file that is not playable media is refused (400 `not_media`); a body "
        "over `UPLOAD_MAX_BYTES` (default 2 GiB) is refused before it is read (413 `too_large`).",
        request={"multipart/form-data": MediaUploadSerializer},
        responses={201: MediaAssetSerializer,
                   413: OpenApiResponse(ErrorSerializer, description="The body is over `UPLOAD_MAX_BYTES`.")},
    ),
)
class MediaViewSet(StudioScopedViewSet):
    """The media library: recorded, downloaded and uploaded files (only the title is editable)."""

    queryset = MediaAsset.objects.all()
    serializer_class = MediaAssetSerializer
    parser_classes = [StationJSONParser, parsers.MultiPartParser, parsers.FormParser]
    filterset_class = MediaFilter
    ordering_fields = ["created_at", "title", "duration_seconds"]

    def get_serializer_class(self):
        return MediaUploadSerializer if self.action == "create" else MediaAssetSerializer

    def create(self, request, *args, **kwargs):
        upload = MediaUploadSerializer(data=request.data, context=self.get_serializer_context())
        upload.is_valid(raise_exception=True)
        asset = asset_upload(studio=upload.validated_data["studio"], upload=upload.validated_data["file"],
                             title=upload.validated_data.get("title", ""))
        return Response(MediaAssetSerializer(asset, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Download the media file",
        responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="The file.")},
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def download(self, request, pk=None):
        asset = self.get_object()
        path = Path(settings.MEDIA_ROOT) / asset.file.name if asset.file else None
        if path is None or not path.is_file():
            raise exceptions.NotFound(_("This media has no file in the library."))
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name, content_type="application/octet-stream")


class IngestSourceViewSet(StudioScopedViewSet):
    """Podcast feeds and URL lists polled for new media."""

    queryset = IngestSource.objects.all()
    serializer_class = IngestSourceSerializer
    filterset_fields = ["studio", "kind", "enabled"]
    ordering_fields = ["name", "next_poll_at", "last_polled_at"]

    @extend_schema(summary="Poll now", description="Make the source due now and wake a poller; new items become downloads.",
                   request=None, responses={202: IngestSourceSerializer})
    @action(detail=True, methods=["post"])
    def poll(self, request, pk=None):
        source = services.source_poll_soon(source=self.get_object())
        return Response(self.get_serializer(source).data, status=status.HTTP_202_ACCEPTED)


class DownloadViewSet(RowListMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Items of sources being fetched, with their progress (read-only; a failed one can be retried)."""

    queryset = Download.objects.all()
    serializer_class = DownloadSerializer
    filterset_fields = ["source", "status", "asset"]
    ordering_fields = ["created_at", "updated_at", "status"]

    def get_queryset(self):
        return super().get_queryset().visible_to(self.request.user)

    @extend_schema(summary="Retry a failed download", request=None, responses={202: DownloadSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        download = services.download_retry(download=self.get_object())
        return Response(self.get_serializer(download).data, status=status.HTTP_202_ACCEPTED)
