from rest_framework import serializers

from station import calendars
from station.api.base import StationModelSerializer
from station.models import Alert, Node, Studio


class StudioSerializer(StationModelSerializer):
    calendar_feeds = serializers.SerializerMethodField(
        help_text="The studio's calendar feeds (iCalendar): name and address, with the calendar token unless public.")

    def get_calendar_feeds(self, studio) -> list[dict]:
        return [{"name": name, "url": url} for name, url in calendars.studio_feed_urls(studio)]

    class Meta:
        model = Studio
        fields = ["id", "name", "slug", "time_zone", "calendar_public", "calendar_feeds", "created_at"]
        read_only_fields = ["created_at"]


class NodeSerializer(StationModelSerializer):
    capabilities = serializers.ListField(child=serializers.ChoiceField(Node.Capability.choices), required=False,
                                         help_text="What this host can do.")
    online = serializers.SerializerMethodField(help_text="Whether the agent heartbeated within NODE_HEARTBEAT_TIMEOUT.")

    class Meta:
        model = Node
        fields = ["id", "name", "hostname", "capabilities", "enabled", "online", "last_heartbeat_at", "agent_version",
                  "created_at"]
        read_only_fields = ["hostname", "last_heartbeat_at", "agent_version", "created_at"]  # the agent reports them

    def get_online(self, node: Node) -> bool:
        return node.is_online()


class AlertSerializer(StationModelSerializer):
    class Meta:
        model = Alert
        fields = ["id", "studio", "severity", "code", "message", "subject", "created_at", "acknowledged_at",
                  "acknowledged_by"]
        read_only_fields = fields


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`.")
