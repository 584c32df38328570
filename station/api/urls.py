"""The API's one router: every app's viewsets under /api/v1/, the schema and its docs beside them."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from ingest.api.views import DownloadViewSet, IngestSourceViewSet, MediaViewSet
from playout.api.views import (AsRunViewSet, ChannelViewSet, EpisodeViewSet, LiveCredentialViewSet, PlaylistItemViewSet,
                               PlaylistViewSet, PodcastViewSet, ShowRecordingViewSet, ShowViewSet)
from recorders.api.views import RecorderViewSet, RecordingViewSet, ScheduleViewSet
from station.api.views import AlertViewSet, NodeViewSet, StudioViewSet, TokenView

router = DefaultRouter()
router.register("studios", StudioViewSet)
router.register("nodes", NodeViewSet)
router.register("alerts", AlertViewSet)
router.register("recorders", RecorderViewSet)
router.register("schedules", ScheduleViewSet)
router.register("recordings", RecordingViewSet)
router.register("channels", ChannelViewSet)
router.register("shows", ShowViewSet)
router.register("live-credentials", LiveCredentialViewSet)
router.register("show-recordings", ShowRecordingViewSet)
router.register("podcasts", PodcastViewSet)
router.register("episodes", EpisodeViewSet)
router.register("playlists", PlaylistViewSet)
router.register("playlist-items", PlaylistItemViewSet)
router.register("as-run", AsRunViewSet)
router.register("media", MediaViewSet)
router.register("ingest-sources", IngestSourceViewSet)
router.register("downloads", DownloadViewSet)

urlpatterns = [
    path("v1/auth/token/", TokenView.as_view(), name="api-token"),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
