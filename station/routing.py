"""Websocket routes, behind the middleware that tells who connects."""

from channels.auth import AuthMiddleware
from channels.routing import URLRouter
from channels.sessions import CookieMiddleware
from django.urls import path

from station.consumers import StudioConsumer
from station.middleware import SocketSessionMiddleware

websocket_urlpatterns = [
    path("ws/studios/<int:studio_id>/", StudioConsumer.as_asgi()),
]
# channels' AuthMiddlewareStack, with a session that is only read (station.middleware.SocketSessionMiddleware)
websocket_application = CookieMiddleware(SocketSessionMiddleware(AuthMiddleware(URLRouter(websocket_urlpatterns))))
