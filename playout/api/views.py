import io

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, renderers
from rest_framework.decorators import action
from rest_framework.response import Response

from playout import presenters, services
from playout.api.serializers import (
    AsRunEntrySerializer,
    ChannelSerializer,
    EpisodeSerializer,
    LiveCredentialSerializer,
    NowPlayingSerializer,
    PlaylistItemSerializer,
    PlaylistSerializer,
    PodcastSerializer,
    ShowRecordingSerializer,
    ShowSerializer,
)
from playout.exports import write_as_run_csv
from playout.models import (AsRunEntry, Channel, Episode, LiveCredential, Playlist, PlaylistItem, Podcast, Show,
                            ShowRecording)
from playout.selectors import channel_now_playing
from station.api.base import StudioScopedReadOnlyViewSet, StudioScopedViewSet
from station.api.permissions import StudioPermission
from station.api.filters import StationFilterSet, UTCDateTimeFilter


def _channel_command(service, summary: str, description: str):
    """A POST action on one channel, named as its service without the ``channel_``: runs it and answers the channel."""

    def command(self, request, pk=None):
        return Response(self.get_serializer(service(channel=self.get_object())).data)

    command.__name__ = service.__name__.removeprefix("channel_")  # the URL and the route name
    command = action(detail=True, methods=["post"])(command)
    return extend_schema(summary=summary, description=description, request=None, responses={200: ChannelSerializer})(command)


class ChannelViewSet(StudioScopedViewSet):
    """Playout channels: one Liquidsoap engine each, on a node, fed by the channel's timeline."""

    queryset = Channel.objects.all()
    serializer_class = ChannelSerializer
    filterset_fields = ["studio", "node", "status", "output_type", "paused"]
    ordering_fields = ["name", "status", "created_at"]

    restart = _channel_command(services.channel_restart, "Restart the engine",
                               "Restart the channel's engine; a channel with no live node is placed on one.")
    skip = _channel_command(services.channel_skip, "Skip what is on air",
                            "Take the item on air off now; the schedule or the filler continues.")
    pause = _channel_command(services.channel_pause, "Pause (silence)",
                             "Put the channel to silence on purpose; logged as `paused` in the as-run log.")
    resume = _channel_command(services.channel_resume, "Resume from a pause",
                              "Back on air: the schedule (or the filler) plays again.")

    @extend_schema(summary="On air now and next", responses={200: NowPlayingSerializer})
    @action(detail=True, methods=["get"], url_path="now-playing", filter_backends=[], pagination_class=None)
    def now_playing(self, request, pk=None):
        return Response(NowPlayingSerializer(channel_now_playing(self.get_object(), now=timezone.now())).data)


class ShowViewSet(StudioScopedViewSet):
    """Programmes on a channel, recurring in the studio's time zone; their windows become the timeline."""

    queryset = Show.objects.all()
    serializer_class = ShowSerializer
    filterset_fields = ["channel", "playlist", "enabled", "recurrence"]
    ordering_fields = ["name", "start_at"]


@extend_schema_view(create=extend_schema(
    description="Issue a credential to a presenter of a show: the answer holds its password, this once."))
class LiveCredentialViewSet(StudioScopedViewSet):
    """What presenters of live shows give their source client (user name and password) to connect to their channel's
    live input during the show's slots; revoked, it stops working and a presenter connected with it is let go."""

    queryset = LiveCredential.objects.select_related("show")
    serializer_class = LiveCredentialSerializer
    filterset_fields = ["show", "show__channel"]
    ordering_fields = ["presenter", "created_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]  # revoked, not deleted: the as-run log names them

    @extend_schema(summary="Revoke", request=None, responses={200: LiveCredentialSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        credential = presenters.live_credential_revoke(credential=self.get_object(), now=timezone.now())
        return Response(self.get_serializer(credential).data)

    @extend_schema(summary="Issue a new password", request=None, responses={200: LiveCredentialSerializer},
                   description="The old password stops working; the answer holds the new one, this once.")
    @action(detail=True, methods=["post"], url_path="new-password")
    def new_password(self, request, pk=None):
        credential = self.get_object()
        credential.password = presenters.live_credential_new_password(credential=credential)
        return Response(self.get_serializer(credential).data)


class ShowRecordingViewSet(StudioScopedReadOnlyViewSet):
    """What each instance of a show marked `record_air` put on air, recorded from its channel's output and cut to
    the slot's frames (read-only): its media asset once completed."""

    queryset = ShowRecording.objects.all()
    serializer_class = ShowRecordingSerializer
    filterset_fields = ["show", "channel", "status"]
    ordering_fields = ["slot_start"]


class PodcastViewSet(StudioScopedViewSet):
    """A show's podcast: its recordings from the air become the episodes of its RSS feed (public, or with its token)."""

    queryset = Podcast.objects.select_related("show")
    serializer_class = PodcastSerializer
    filterset_fields = ["show", "public"]
    ordering_fields = ["created_at"]


class EpisodeViewSet(mixins.UpdateModelMixin, StudioScopedReadOnlyViewSet):
    """Podcast episodes, made from shows' recordings (never created or deleted here): edit their title and
    description, publish or unpublish them."""

    queryset = Episode.objects.select_related("podcast")
    serializer_class = EpisodeSerializer
    permission_classes = [StudioPermission]
    filterset_fields = ["podcast", "status", "published"]
    ordering_fields = ["published_at", "created_at"]


class PlaylistViewSet(StudioScopedViewSet):
    """Ordered media and webstreams a show plays, or a channel's filler; items are listed in play order."""

    queryset = Playlist.objects.prefetch_related("items__asset")
    serializer_class = PlaylistSerializer
    filterset_fields = ["studio"]
    ordering_fields = ["name", "created_at"]


class PlaylistItemViewSet(StudioScopedViewSet):
    """Entries of playlists: a media asset (optionally cued) or a webstream for a fixed length."""

    queryset = PlaylistItem.objects.select_related("asset")
    serializer_class = PlaylistItemSerializer
    filterset_fields = ["playlist", "asset"]
    ordering_fields = ["position", "id"]


class AsRunCsvRenderer(renderers.BaseRenderer):
    """The as-run rows of a whole filtered range as CSV (times in UTC), as the admin exports them."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        out = io.StringIO()
        write_as_run_csv(data, out)
        return out.getvalue().encode(self.charset)


class AsRunFilter(StationFilterSet):
    since = UTCDateTimeFilter(field_name="started_at", lookup_expr="gte", help_text="Rows started at or after.")
    until = UTCDateTimeFilter(field_name="started_at", lookup_expr="lt", help_text="Rows started before.")

    class Meta:
        model = AsRunEntry
        fields = ["channel", "result"]


@extend_schema_view(
    list=extend_schema(
        description="The as-run log, newest first. `?format=csv` returns every row of the filtered range as CSV, "
        "oldest first (no pages): channel, started_at_utc, ended_at_utc, duration_seconds, title, result, asset_id, "
        "asset_checksum, scheduled_item_id, node, presenter (who was live, for live segments).",
        parameters=[OpenApiParameter("format", str, enum=["json", "csv"], description="`csv` for the compliance export.")],
        responses={(200, "application/json"): AsRunEntrySerializer(many=True), (200, "text/csv"): OpenApiTypes.STR},
        examples=[OpenApiExample("CSV", response_only=True, media_type="text/csv", value=(
            "channel,started_at_utc,ended_at_utc,duration_seconds,title,result,asset_id,asset_checksum,scheduled_item_id,node,"
            "presenter\r\n"
            "main,2026-03-29T06:00:00+00:00,2026-03-29T06:03:30+00:00,210.000,News,played,12,9f86d0…,345,node-1,\r\n"))],
    ),
)
class AsRunViewSet(StudioScopedReadOnlyViewSet):
    """What really went on air (read-only): one open row per channel, closed when the item changes."""

    queryset = AsRunEntry.objects.all()
    serializer_class = AsRunEntrySerializer
    filterset_class = AsRunFilter
    ordering_fields = ["started_at"]

    def get_renderers(self):
        if self.action == "list":
            return [*super().get_renderers(), AsRunCsvRenderer()]
        return super().get_renderers()

    def list(self, request, *args, **kwargs):
        if request.accepted_renderer.format != AsRunCsvRenderer.format:
            return super().list(request, *args, **kwargs)
        entries = self.filter_queryset(self.get_queryset()).select_related("channel", "asset", "node").order_by("started_at")
        return Response(entries, headers={
            "Content-Disposition": f'attachment; filename="as-run-{timezone.now():%Y%m%d-%H%M%S}.csv"'})

    def handle_exception(self, exc):
        # Errors are JSON in the one error shape, even when CSV was asked for.
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = self.request.accepted_renderer.media_type
        return super().handle_exception(exc)
