"""The recorders' event payloads: the rows dashboards and webhooks get (``recorders.schedule``)."""

from recorders.models import RecorderSchedule
from station.events import iso


def schedule_row(window: RecorderSchedule) -> dict:
    return {"id": window.pk, "recorder": window.recorder_id, "name": window.name, "status": window.status, "start_at": iso(window.start_at),
            "end_at": iso(window.end_at), "error": window.error_message}
