from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.response import Response

from recorders import services
from recorders.api.serializers import (
    OccurrencesQuerySerializer,
    OccurrencesSerializer,
    RecorderSerializer,
    RecordingSerializer,
    ScheduleSerializer,
)
from recorders.models import Recorder, RecorderSchedule, RecordingSession
from station.api.base import StudioScopedReadOnlyViewSet, StudioScopedViewSet
from station.api.filters import StationFilterSet, UTCDateTimeFilter
from station.models import Studio
from station.selectors import window_occurrences

SCHEDULE_EXAMPLE = {
    "recorder": 1,
    "name": "Morning show",
    "start_at": "2026-03-28T07:00:00Z",
    "end_at": "2026-03-28T09:00:00Z",
    "recurrence": "daily",
    "rrule": "",
    "skip_dates": ["2026-04-06"],
}


class RecorderViewSet(StudioScopedViewSet):
    """Inputs a node records with ffmpeg (stream URL, file or device)."""

    queryset = Recorder.objects.all()
    serializer_class = RecorderSerializer
    filterset_fields = ["studio", "node", "enabled", "output_format"]
    ordering_fields = ["name", "created_at"]


class ScheduleFilter(StationFilterSet):
    studio = filters.ModelChoiceFilter(field_name="recorder__studio", queryset=Studio.objects.all(),
                                       help_text="Windows of this studio's recorders.")
    starts_after = UTCDateTimeFilter(field_name="start_at", lookup_expr="gte")
    starts_before = UTCDateTimeFilter(field_name="start_at", lookup_expr="lt")

    class Meta:
        model = RecorderSchedule
        fields = ["recorder", "status", "recurrence"]


def _schedule_action(summary: str, description: str):
    return extend_schema(summary=summary, description=description, request=None, responses={200: ScheduleSerializer})


@extend_schema_view(
    create=extend_schema(examples=[OpenApiExample("Daily at 07:00 UTC, one date skipped", value=SCHEDULE_EXAMPLE,
                                                  request_only=True)]),
)
class ScheduleViewSet(StudioScopedViewSet):
    """Recording windows: a window on a recorder, recurring in the studio's time zone.

    Status runs pending → starting → running → stopping → completed, or failed, cancelled, missed;
    the agent moves it. Once a window is claimed its recorder and times are read-only.
    """

    queryset = RecorderSchedule.objects.all()
    serializer_class = ScheduleSerializer
    filterset_class = ScheduleFilter
    ordering_fields = ["start_at", "end_at", "name", "status"]

    @_schedule_action("Cancel a window", "Call the window off; a recording in progress is stopped. The series goes on.")
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(self.get_serializer(services.schedule_cancel(schedule=self.get_object())).data)

    @_schedule_action("Start a pending window now", "Open the window now instead of at its start; the series keeps its times.")
    @action(detail=True, methods=["post"], url_path="start-now")
    def start_now(self, request, pk=None):
        return Response(self.get_serializer(services.schedule_start_now(schedule=self.get_object())).data)

    @_schedule_action("Stop a recording now", "Close the window of a recording in progress now; the agent completes it.")
    @action(detail=True, methods=["post"], url_path="stop-now")
    def stop_now(self, request, pk=None):
        return Response(self.get_serializer(services.schedule_stop_now(schedule=self.get_object())).data)

    @extend_schema(
        summary="Windows of the series",
        description="This window and the series' next ones starting before `until`, in UTC and in the studio's local "
        "time (a 07:00 window stays at 07:00 local across DST changes).",
        parameters=[OccurrencesQuerySerializer],
        responses={200: OccurrencesSerializer},
        examples=[OpenApiExample("Across the spring clock change in London", response_only=True, value={
            "schedule": 7, "time_zone": "Europe/London", "occurrences": [
                {"start_at": "2026-03-28T07:00:00Z", "end_at": "2026-03-28T09:00:00Z",
                 "local_start": "2026-03-28T07:00:00+00:00", "local_end": "2026-03-28T09:00:00+00:00"},
                {"start_at": "2026-03-29T06:00:00Z", "end_at": "2026-03-29T08:00:00Z",
                 "local_start": "2026-03-29T07:00:00+01:00", "local_end": "2026-03-29T09:00:00+01:00"}]})],
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def occurrences(self, request, pk=None):
        schedule = self.get_object()
        query = OccurrencesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        zone = schedule.studio_zone()
        windows = window_occurrences(schedule, until=query.validated_data["until"], limit=query.validated_data["limit"])
        return Response(OccurrencesSerializer({
            "schedule": schedule.pk,
            "time_zone": zone.key,
            "occurrences": [{"start_at": start, "end_at": end, "local_start": start.astimezone(zone),
                             "local_end": end.astimezone(zone)} for start, end in windows],
        }).data)

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "occurrences":
            return queryset.select_related("recorder__studio")
        return queryset.select_related("session")


class RecordingFilter(StationFilterSet):
    started_after = UTCDateTimeFilter(field_name="started_at", lookup_expr="gte", help_text="Recordings started at or after.")
    started_before = UTCDateTimeFilter(field_name="started_at", lookup_expr="lt", help_text="Recordings started before.")

    class Meta:
        model = RecordingSession
        fields = ["recorder", "schedule", "status"]


class RecordingViewSet(StudioScopedReadOnlyViewSet):
    """What each window recorded (read-only): when, on which node, its gaps, and its media; newest first."""

    queryset = RecordingSession.objects.all()
    serializer_class = RecordingSerializer
    filterset_class = RecordingFilter
    ordering_fields = ["started_at"]
