from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from playout.views import channel_calendar, podcast_episode_audio, podcast_feed
from recorders.views import recorder_calendar
from station import views

admin.site.site_header = "Stationkeeper"
admin.site.site_title = "Stationkeeper"
admin.site.index_title = "Station administration"
handler404 = "station.api.views.not_found"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", include("station.api.urls")),
    path("playout/", include("playout.urls")),
    path("public/", include("playout.public_urls")),
    path("calendars/<slug:slug>.ics", views.studio_calendar, name="calendar-studio"),
    path("calendars/<slug:slug>/channels/<slug:channel_slug>.ics", channel_calendar, name="calendar-channel"),
    path("calendars/<slug:slug>/recorders/<int:recorder_id>.ics", recorder_calendar, name="calendar-recorder"),
    path("podcasts/<int:show_id>.rss", podcast_feed, name="podcast-feed"),
    path("podcasts/<int:show_id>/<uuid:guid>.mp3", podcast_episode_audio, name="podcast-episode-audio"),
    path("dashboard/", views.dashboards, name="dashboards"),
    path("studios/<int:studio_id>/dashboard/", views.dashboard, name="dashboard"),
    path("studios/<int:studio_id>/snapshot.json", views.dashboard_snapshot, name="dashboard-snapshot"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
]
