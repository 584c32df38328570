"""Websocket routes."""

from django.urls import path

from station.consumers import StudioConsumer

websocket_urlpatterns = [
    path("ws/studios/<int:studio_id>/", StudioConsumer.as_asgi()),
]
