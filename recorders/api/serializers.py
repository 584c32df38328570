from rest_framework import serializers

from recorders.models import Recorder, RecorderSchedule, RecordingSession
from station.api.base import StationModelSerializer, UTCDateTimeField


class RecorderSerializer(StationModelSerializer):
    class Meta:
        model = Recorder
        fields = ["id", "studio", "name", "source_url", "node", "output_format", "segment_seconds", "pre_roll_seconds",
                  "post_roll_seconds", "enabled", "created_at", "updated_at"]


class ScheduleSerializer(StationModelSerializer):
    recording = serializers.PrimaryKeyRelatedField(
        source="session", read_only=True, allow_null=True, help_text="What the window recorded (`/recordings/<id>/`); null until claimed.")

    class Meta:
        model = RecorderSchedule
        fields = ["id", "recorder", "name", "start_at", "end_at", "recurrence", "rrule", "skip_dates", "status",
                  "error_message", "previous", "recording", "created_at", "updated_at"]
        read_only_fields = ["status", "error_message", "previous"]


class RecordingSerializer(StationModelSerializer):
    class Meta:
        model = RecordingSession
        fields = ["id", "schedule", "recorder", "node", "status", "started_at", "ended_at", "gaps", "levels",
                  "error_message", "asset", "created_at", "updated_at"]
        read_only_fields = fields
        extra_kwargs = {"asset": {"help_text": "The recorded media (`/media/<id>/`): one file for the whole window."},
                        "gaps": {"help_text": "Stretches with no audio, as [start, end, reason]: instants in UTC "
                                              "and why (the source dropped or was not reached, its agent stopped); "
                                              "the asset holds silence of their length."},
                        "levels": {"help_text": "Once completed: `peak_db` and `rms_db` (dBFS, null for pure silence), "
                                                "`silent_seconds` and `silences` ([start, end] instants in UTC of "
                                                "silences of RECORDER_DEAD_SOURCE_SECONDS or more)."}}


class OccurrencesQuerySerializer(serializers.Serializer):
    until = UTCDateTimeField(help_text="List windows starting before this instant (ISO 8601, with its offset).")
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100, help_text="At most this many windows.")


class LocalDateTimeField(serializers.DateTimeField):
    """An instant kept in the zone it is given in (a studio's), not converted to the request's."""

    def to_representation(self, value):
        return value.isoformat()


class OccurrenceSerializer(serializers.Serializer):
    start_at = UTCDateTimeField()
    end_at = UTCDateTimeField()
    local_start = LocalDateTimeField(help_text="The start in the studio's zone, with that zone's offset then.")
    local_end = LocalDateTimeField(help_text="The end in the studio's zone, with that zone's offset then.")


class OccurrencesSerializer(serializers.Serializer):
    schedule = serializers.IntegerField()
    time_zone = serializers.CharField(help_text="The studio's IANA zone the series recurs in.")
    occurrences = OccurrenceSerializer(many=True)
