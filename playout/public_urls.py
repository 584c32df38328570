"""Addresses for anyone, under /public/ (playout.public): now-playing and HLS outputs. The Server-Sent Events beside
them are an ASGI route (playout.consumers.with_public_streams), served without Django's request cycle."""

from django.urls import path

from playout import views

app_name = "public"
urlpatterns = [
    path("channels/<slug:slug>/now-playing", views.public_now_playing, name="now-playing"),
    path("hls/channel-<int:channel_id>/<str:name>", views.hls, name="hls"),
]
