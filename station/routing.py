"""Websocket routes; the dashboards' consumers register here."""

websocket_urlpatterns: list = []
