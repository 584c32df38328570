"""State changes of playout channels."""

from django.db import transaction
from django.db.models import F

from ingest.models import MediaAsset
from playout.models import AsRunEntry, Channel, ScheduledItem
from station import events


def _announce(channel: Channel) -> None:
    events.publish(
        studio_id=channel.studio_id,
        type="playout.channel",
        payload={
            "id": channel.pk,
            "status": channel.status,
            "node": channel.node_id,
            "restart_count": channel.restart_count,
            "paused": channel.paused,
            "error_message": channel.error_message,
        },
    )


@transaction.atomic
def channel_restart(*, channel: Channel) -> Channel:
    """Ask the channel's node agent to (re)start its engine."""
    channel.move_to(Channel.Status.STARTING, restart_count=F("restart_count") + 1, error_message="")
    _announce(channel)
    return channel


@transaction.atomic
def channel_mark_running(*, channel: Channel, node, now) -> bool:
    """The engine on ``node`` answers: the channel is on air there. False if it was moved or stopped."""
    moved = Channel.objects.filter(pk=channel.pk, node=node, status=Channel.Status.STARTING).update(
        status=Channel.Status.RUNNING, last_heartbeat_at=now, error_message="", updated_at=now
    )
    if moved:
        channel.refresh_from_db()
        _announce(channel)
    return bool(moved)


def channel_report_healthy(*, channel_ids: list[int], node, now) -> None:
    """Heartbeat of the engines an agent runs (what the health job checks)."""
    Channel.objects.filter(pk__in=channel_ids, node=node, status=Channel.Status.RUNNING).update(last_heartbeat_at=now)


@transaction.atomic
def channel_on_air(*, channel_id: int, at, title: str, result: str, asset_id=None, scheduled_item_id=None,
                   node=None) -> AsRunEntry:
    """What is on air changed: close the channel's open as-run row with its duration and open one for now."""
    open_row = AsRunEntry.objects.select_for_update().filter(channel_id=channel_id, ended_at__isnull=True).first()
    if open_row is not None:
        ended = max(at, open_row.started_at)
        AsRunEntry.objects.filter(pk=open_row.pk).update(
            ended_at=ended, duration_seconds=(ended - open_row.started_at).total_seconds()
        )
    entry = AsRunEntry.objects.create(
        channel_id=channel_id, started_at=at, title=title[:300], result=result, node=node,
        asset_id=asset_id if asset_id and MediaAsset.objects.filter(pk=asset_id).exists() else None,
        scheduled_item_id=scheduled_item_id if scheduled_item_id and ScheduledItem.objects.filter(pk=scheduled_item_id).exists() else None,
    )
    studio_id = Channel.objects.values_list("studio_id", flat=True).get(pk=channel_id)
    events.publish(
        studio_id=studio_id,
        type="playout.on_air",
        payload={"channel": channel_id, "as_run": entry.pk, "title": entry.title, "result": result,
                 "started_at": at.isoformat(), "closed": open_row.pk if open_row else None},
    )
    return entry
