"""Plain Django views over the same schedule rows as the API: the baseline of bench/api_throughput.py.

No authentication, permissions, throttling, validation or serializer: the least a view can do.
"""

import json

from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from recorders.models import RecorderSchedule

FIELDS = ["id", "recorder", "name", "start_at", "end_at", "recurrence", "rrule", "skip_dates", "status", "error_message",
          "previous", "created_at", "updated_at"]


def schedules(request):
    rows = list(RecorderSchedule.objects.order_by("start_at").values(*FIELDS)[:100])
    return JsonResponse({"count": RecorderSchedule.objects.count(), "results": rows})


@csrf_exempt
def create_schedule(request):
    body = json.loads(request.body)
    schedule = RecorderSchedule.objects.create(recorder_id=body["recorder"], name=body["name"], start_at=body["start_at"],
                                               end_at=body["end_at"])
    return JsonResponse({"id": schedule.pk}, status=201)


urlpatterns = [
    path("plain/schedules/", schedules),
    path("plain/schedules/create/", create_schedule),
    path("", include("station.urls")),
]
