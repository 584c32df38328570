from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from playout import podcasts, presenters
from playout.models import (AsRunEntry, Channel, Episode, LiveCredential, Playlist, PlaylistItem, Podcast, ScheduledItem,
                            Show, ShowRecording)
from playout.public import public_urls
from station.api.base import StationModelSerializer


class ChannelSerializer(StationModelSerializer):
    output_settings = serializers.DictField(
        required=False,
        help_text='Harbor: `{"port": 8100, "mount": "live", "bitrate": 128}` (port required, within the station\'s '
                  'harbor range); Icecast: `host`, `port`, `password`, `mount`, `bitrate`; file: `format` (mp3, wav) and '
                  '`bitrate` (the station names the file). Unknown or malformed settings are refused (400).',
    )

    def validate_output_type(self, value):
        request = self.context.get("request")
        if value in Channel.SUPERUSER_OUTPUTS and not (request and request.user.is_superuser):
            raise serializers.ValidationError(_("Only a superuser can give a channel a %(output)s output.")
                                              % {"output": Channel.Output(value).label}, code="output_for_superusers")
        return value

    listener_url = serializers.CharField(read_only=True, allow_null=True,
                                         help_text="Where listeners get the channel from its output (HLS), if anywhere.")
    public_now_playing_urls = serializers.SerializerMethodField(
        help_text="Where listeners' websites read what is on air (JSON and Server-Sent Events), once published.")

    def get_public_now_playing_urls(self, channel) -> dict | None:
        return public_urls(channel)

    class Meta:
        model = Channel
        fields = ["id", "studio", "name", "slug", "node", "output_type", "output_settings", "loudness_target_lufs",
                  "listener_url", "dead_air_seconds", "silence_threshold_dbfs", "public_now_playing", "live_input_port",
                  "live_grace_seconds",
                  "public_now_playing_urls",
                  "fallback_playlist", "status", "paused", "restart_count", "last_heartbeat_at", "error_message",
                  "created_at", "updated_at"]
        read_only_fields = ["status", "paused", "restart_count", "last_heartbeat_at", "error_message"]


class ShowSerializer(StationModelSerializer):
    class Meta:
        model = Show
        fields = ["id", "channel", "name", "description", "playlist", "start_at", "end_at", "recurrence", "rrule",
                  "skip_dates", "enabled", "record_air", "live_margin_seconds", "created_at", "updated_at"]


class LiveCredentialSerializer(StationModelSerializer):
    password = serializers.SerializerMethodField(
        help_text="The password for the source client, in the answer that issues it (or a new one) only: only its "
                  "hash is kept.")

    def get_password(self, credential) -> str | None:
        return getattr(credential, "password", None)

    def validate(self, attrs):
        if self.instance is not None and {"show", "username"} & attrs.keys():
            raise serializers.ValidationError(
                _("A credential stays with its show and user name: issue another one instead."),
                code="live_credential_fixed")
        return super().validate(attrs)

    def create(self, validated_data):
        credential, credential.password = presenters.live_credential_issue(**validated_data)
        return credential

    class Meta:
        model = LiveCredential
        fields = ["id", "show", "presenter", "username", "password", "revoked_at", "created_at", "updated_at"]
        read_only_fields = ["revoked_at"]


class ShowRecordingSerializer(StationModelSerializer):
    class Meta:
        model = ShowRecording
        fields = ["id", "show", "instance", "channel", "slot_start", "slot_end", "started_at", "ended_at", "asset",
                  "status", "error_message", "node", "created_at", "updated_at"]
        read_only_fields = fields


class PodcastSerializer(StationModelSerializer):
    feed_url = serializers.SerializerMethodField(help_text="The RSS feed's address (with the token when private).")

    def get_feed_url(self, podcast) -> str:
        return podcasts.feed_url(podcast, self.context.get("request"))

    class Meta:
        model = Podcast
        fields = ["id", "show", "public", "author", "image_url", "category", "explicit", "language", "feed_url",
                  "created_at", "updated_at"]


class EpisodeSerializer(StationModelSerializer):
    class Meta:
        model = Episode
        fields = ["id", "podcast", "recording", "guid", "title", "description", "published", "published_at", "asset",
                  "duration_seconds", "chapters", "status", "error_message", "created_at", "updated_at"]
        read_only_fields = ["podcast", "recording", "guid", "asset", "duration_seconds", "chapters", "status",
                            "error_message"]


class PlaylistItemSerializer(StationModelSerializer):
    play_seconds = serializers.FloatField(read_only=True, allow_null=True,
                                          help_text="How long it plays, from its cues and its media's duration.")

    class Meta:
        model = PlaylistItem
        fields = ["id", "playlist", "position", "asset", "webstream_url", "webstream_seconds", "cue_in_seconds",
                  "cue_out_seconds", "play_seconds"]


class PlaylistSerializer(StationModelSerializer):
    items = PlaylistItemSerializer(many=True, read_only=True, help_text="In play order; change them at /playlist-items/.")

    class Meta:
        model = Playlist
        fields = ["id", "studio", "name", "description", "items", "created_at", "updated_at"]


class AsRunEntrySerializer(StationModelSerializer):
    class Meta:
        model = AsRunEntry
        fields = ["id", "channel", "asset", "scheduled_item", "title", "started_at", "ended_at", "duration_seconds",
                  "result", "presenter", "node"]
        read_only_fields = fields


class ScheduledItemSerializer(StationModelSerializer):
    class Meta:
        model = ScheduledItem
        fields = ["id", "channel", "instance", "asset", "webstream_url", "title", "start_at", "end_at", "cue_in_seconds"]
        read_only_fields = fields


class NowPlayingSerializer(serializers.Serializer):
    channel = serializers.IntegerField(source="channel.pk")
    status = serializers.CharField(source="channel.status")
    paused = serializers.BooleanField(source="channel.paused")
    on_air = AsRunEntrySerializer(allow_null=True, help_text="The open as-run row: what is on air now.")
    next = ScheduledItemSerializer(allow_null=True, help_text="The next item on the channel's timeline.")
