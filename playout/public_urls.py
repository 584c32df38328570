"""Addresses for anyone, under /public/ (playout.public). The Server-Sent Events beside them are an ASGI route
(playout.routing), served without Django's request cycle."""

from django.urls import path

from playout import views

app_name = "public"
urlpatterns = [
    path("channels/<slug:slug>/now-playing", views.public_now_playing, name="now-playing"),
    path("hls/channel-<int:channel_id>/<str:name>", views.hls, name="hls"),
]
