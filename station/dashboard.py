"""What a studio's dashboard shows, as one JSON-ready snapshot (the page's first paint and a resync).

Times are ISO 8601 in UTC; the page shows them in the studio's zone and computes elapsed and
remaining time itself from ``server_time``, so a snapshot stays true while it is on screen.
"""

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from ingest.models import Download
from playout.models import AsRunEntry, Channel, ScheduledItem, ShowInstance
from playout.selectors import missed_probes_cutoff
from recorders.models import RecorderSchedule
from station.models import Alert, Studio

TIMELINE_HOURS = 6
AS_RUN_ROWS = 50
ACTIVE_DOWNLOADS = [Download.Status.QUEUED, Download.Status.DOWNLOADING]


def studio_snapshot(studio_id: int, *, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    studio = Studio.objects.get(pk=studio_id)
    channels = list(Channel.objects.filter(studio=studio).select_related("node").order_by("name"))
    return {
        "studio": {"id": studio.pk, "name": studio.name, "time_zone": studio.time_zone},
        "server_time": _iso(now),
        "channels": _channels(channels, now),
        "recorders": _recorders(studio, now),
        "as_run": [as_run_row(row) for row in
                   AsRunEntry.objects.filter(channel__studio=studio).select_related("channel").order_by("-started_at")[:AS_RUN_ROWS]],
        "alerts": [alert_row(alert) for alert in Alert.objects.filter(studio=studio, acknowledged_at__isnull=True)[:100]],
        "downloads": [download_row(download) for download in
                      Download.objects.filter(source__studio=studio, status__in=ACTIVE_DOWNLOADS).order_by("created_at")[:50]],
        "timeline": _timeline(studio, channels, now),
    }


def studio_timeline(studio_id: int, *, now: datetime | None = None) -> dict:
    """The timeline alone (the ``station.timeline`` event, sent when shows or recordings are edited)."""
    studio = Studio.objects.get(pk=studio_id)
    return _timeline(studio, list(Channel.objects.filter(studio=studio).order_by("name")), now or timezone.now())


def channel_is_healthy(channel: Channel, now: datetime) -> bool:
    """Running, and probed since the failover threshold (the health job's own test)."""
    return (channel.status == Channel.Status.RUNNING and channel.last_heartbeat_at is not None
            and channel.last_heartbeat_at >= missed_probes_cutoff(now))


def _channels(channels: list[Channel], now: datetime) -> list[dict]:
    ids = [channel.pk for channel in channels]
    on_air = {row.channel_id: row for row in
              AsRunEntry.objects.filter(channel_id__in=ids, ended_at__isnull=True).select_related("scheduled_item", "channel")}
    following = {item.channel_id: item for item in
                 ScheduledItem.objects.filter(channel_id__in=ids, start_at__gt=now).order_by("channel_id", "start_at")
                 .distinct("channel_id")}
    return [{
        **channel_row(channel, now),
        "on_air": as_run_row(on_air[channel.pk]) if channel.pk in on_air else None,
        "next": _item_row(following[channel.pk]) if channel.pk in following else None,
    } for channel in channels]


def channel_row(channel: Channel, now: datetime) -> dict:
    """A channel's state (the ``playout.channel`` event; the snapshot adds what is on air and next)."""
    return {
        "id": channel.pk,
        "name": channel.name,
        "status": channel.status,
        "paused": channel.paused,
        "node": channel.node.name if channel.node else None,
        "healthy": channel_is_healthy(channel, now),
        "last_probe_at": _iso(channel.last_heartbeat_at),
        "restart_count": channel.restart_count,
        "error": channel.error_message,
    }


def _recorders(studio: Studio, now: datetime) -> list[dict]:
    windows = {window.recorder_id: window for window in
               RecorderSchedule.objects.filter(recorder__studio=studio, end_at__gt=now)
               .exclude(status__in=[RecorderSchedule.Status.CANCELLED, RecorderSchedule.Status.COMPLETED])
               .order_by("recorder_id", "start_at").distinct("recorder_id")}
    return [{
        "id": recorder.pk,
        "name": recorder.name,
        "node": recorder.node.name if recorder.node else None,
        "enabled": recorder.enabled,
        "window": schedule_row(windows[recorder.pk]) if recorder.pk in windows else None,
    } for recorder in studio.recorders.select_related("node").order_by("name")]


def _timeline(studio: Studio, channels: list[Channel], now: datetime) -> dict:
    """Shows and recordings of the next hours as bars, with overlaps and the channels' uncovered time marked."""
    until = now + timedelta(hours=TIMELINE_HOURS)
    bars = [{
        "kind": "show", "id": instance.pk, "lane": f"channel-{instance.channel_id}", "title": instance.show.name,
        "start_at": _iso(instance.start_at), "end_at": _iso(instance.end_at), "status": "scheduled",
    } for instance in ShowInstance.objects.filter(channel__studio=studio, cancelled=False, end_at__gt=now, start_at__lt=until)
        .select_related("show").order_by("start_at")]
    bars += [{
        "kind": "recording", "id": window.pk, "lane": f"recorder-{window.recorder_id}", "title": window.name,
        "start_at": _iso(window.start_at), "end_at": _iso(window.end_at), "status": window.status,
    } for window in RecorderSchedule.objects.filter(recorder__studio=studio, end_at__gt=now, start_at__lt=until)
        .exclude(status=RecorderSchedule.Status.CANCELLED).order_by("start_at")]
    lanes = [{"id": f"channel-{channel.pk}", "title": channel.name} for channel in channels]
    lanes += [{"id": f"recorder-{recorder.pk}", "title": recorder.name} for recorder in studio.recorders.order_by("name")]
    return {"from": _iso(now), "until": _iso(until), "lanes": lanes, "bars": bars,
            "conflicts": _overlaps(bars), "gaps": _gaps(bars, channels, now, until)}


def _overlaps(bars: list[dict]) -> list[dict]:
    conflicts = []
    for index, bar in enumerate(bars):
        for other in bars[index + 1:]:
            if other["lane"] == bar["lane"] and other["start_at"] < bar["end_at"] and bar["start_at"] < other["end_at"]:
                conflicts.append({"lane": bar["lane"], "start_at": max(bar["start_at"], other["start_at"]),
                                  "end_at": min(bar["end_at"], other["end_at"]), "bars": [bar["id"], other["id"]]})
    return conflicts


def _gaps(bars: list[dict], channels: list[Channel], now: datetime, until: datetime) -> list[dict]:
    """Stretches of each channel's next hours no show covers: the filler plays there."""
    gaps = []
    for channel in channels:
        lane = f"channel-{channel.pk}"
        cursor = _iso(now)
        for bar in sorted((b for b in bars if b["lane"] == lane), key=lambda b: b["start_at"]):
            if bar["start_at"] > cursor:
                gaps.append({"lane": lane, "start_at": cursor, "end_at": bar["start_at"]})
            cursor = max(cursor, bar["end_at"])
        if cursor < _iso(until):
            gaps.append({"lane": lane, "start_at": cursor, "end_at": _iso(until)})
    return gaps


def as_run_row(row: AsRunEntry) -> dict:
    scheduled = row.scheduled_item if row.scheduled_item_id else None
    return {
        "id": row.pk, "channel": row.channel_id, "channel_name": row.channel.name, "title": row.title,
        "result": row.result, "started_at": _iso(row.started_at), "ended_at": _iso(row.ended_at),
        "duration_seconds": row.duration_seconds, "asset": row.asset_id, "scheduled_item": row.scheduled_item_id,
        "ends_at": _iso(scheduled.end_at) if scheduled else None,
    }


def next_item_row(channel_id: int, now: datetime) -> dict | None:
    following = ScheduledItem.objects.filter(channel_id=channel_id, start_at__gt=now).order_by("start_at").first()
    return _item_row(following) if following else None


def _item_row(item: ScheduledItem) -> dict:
    return {"id": item.pk, "title": item.title, "start_at": _iso(item.start_at), "end_at": _iso(item.end_at)}


def schedule_row(window: RecorderSchedule) -> dict:
    return {"id": window.pk, "recorder": window.recorder_id, "name": window.name, "status": window.status, "start_at": _iso(window.start_at),
            "end_at": _iso(window.end_at), "error": window.error_message}


def alert_row(alert: Alert) -> dict:
    return {"id": alert.pk, "severity": alert.severity, "code": alert.code, "subject": alert.subject,
            "message": alert.message, "created_at": _iso(alert.created_at), "acknowledged": alert.acknowledged_at is not None}


def download_row(download: Download) -> dict:
    return {"id": download.pk, "source": download.source_id, "title": download.title or download.url,
            "status": download.status, "bytes_done": download.bytes_done, "bytes_total": download.bytes_total,
            "error": download.error_message, "asset": download.asset_id}


def _iso(moment: datetime | None) -> str | None:
    """Fixed width (milliseconds, Z), so the strings also sort and compare as the instants do."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None
