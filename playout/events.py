"""Playout's event payloads: the rows dashboards and webhooks get (``playout.channel``, ``playout.on_air``)."""

from datetime import datetime

from playout.models import AsRunEntry, Channel, ScheduledItem, ShowRecording
from playout.selectors import channel_is_healthy
from station.events import iso


def channel_row(channel: Channel, now: datetime, recording: ShowRecording | None) -> dict:
    """A channel's state (the ``playout.channel`` event; the snapshot adds what is on air and next), with the show it
    records from the air now (``channel_recording_now``), if any."""
    return {
        "id": channel.pk,
        "name": channel.name,
        "status": channel.status,
        "paused": channel.paused,
        "node": channel.node.name if channel.node else None,
        "healthy": channel_is_healthy(channel, now),
        "last_probe_at": iso(channel.last_heartbeat_at),
        "restart_count": channel.restart_count,
        "error": channel.error_message,
        "recording": show_recording_row(recording) if recording else None,
    }


def channel_recording_now(channel_id: int) -> ShowRecording | None:
    return (ShowRecording.objects.filter(channel_id=channel_id, status=ShowRecording.Status.RECORDING)
            .select_related("show").order_by("-slot_start").first())


def show_recording_row(recording: ShowRecording) -> dict:
    """A show being recorded from the air: which, since when (its first sample, else its slot), until when."""
    return {"id": recording.pk, "show": recording.show.name, "started_at": iso(recording.started_at or recording.slot_start),
            "slot_end": iso(recording.slot_end), "status": recording.status}


def as_run_row(row: AsRunEntry) -> dict:
    scheduled = row.scheduled_item if row.scheduled_item_id else None
    return {
        "id": row.pk, "channel": row.channel_id, "channel_name": row.channel.name, "title": row.title,
        "result": row.result, "presenter": row.presenter, "started_at": iso(row.started_at), "ended_at": iso(row.ended_at),
        "duration_seconds": row.duration_seconds, "asset": row.asset_id, "scheduled_item": row.scheduled_item_id,
        "ends_at": iso(scheduled.end_at) if scheduled else None,
    }


def next_item_row(channel_id: int, now: datetime) -> dict | None:
    following = ScheduledItem.objects.filter(channel_id=channel_id, start_at__gt=now).order_by("start_at").first()
    return item_row(following) if following else None


def item_row(item: ScheduledItem) -> dict:
    return {"id": item.pk, "title": item.title, "start_at": iso(item.start_at), "end_at": iso(item.end_at)}
