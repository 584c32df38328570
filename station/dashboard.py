"""What a studio's dashboard shows, as one JSON-ready snapshot (the page's first paint and a resync).

It reads every app, so it is part of the composition root (docs/architecture.md, "Layering"). Its
rows are the apps' own event payloads (``station.events``, ``recorders.events``, ``playout.events``,
``ingest.events``), so a page applies an event's row as it painted the snapshot's.

Times are ISO 8601 in UTC; the page shows them in the studio's zone and computes elapsed and
remaining time itself from ``server_time``, so a snapshot stays true while it is on screen.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from ingest.events import download_row
from ingest.models import Download
from playout.events import as_run_row, channel_row, item_row
from playout.models import AsRunEntry, Channel, ScheduledItem, ShowInstance, ShowRecording
from recorders.events import schedule_row
from recorders.models import RecorderSchedule
from station import events
from station.events import alert_row, iso
from station.models import Alert, Studio

TIMELINE_HOURS = 6
AS_RUN_ROWS = 50
ACTIVE_DOWNLOADS = [Download.Status.QUEUED, Download.Status.DOWNLOADING]


@dataclass(frozen=True)
class SnapshotFrame:
    """A studio's snapshot as a socket sends it, encoded once for every dashboard it goes to."""

    seq: int  # the latest event when it was read
    covered: frozenset[int]  # the studio's events whose change it shows, among the ``covered_margin`` ids up to seq
    text: str


def studio_snapshot_frame(studio_id: int, *, covered_margin: int) -> SnapshotFrame:
    """The studio's snapshot frame (docs/asyncapi.yaml), and which events it already shows, read at one instant.

    One REPEATABLE READ transaction, so every query sees the same committed changes: an event is
    in ``covered`` exactly when the snapshot shows its change. One that commits meanwhile is in
    neither, and goes out as an event.
    """
    with transaction.atomic(durable=True):
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        seq = events.latest_seq()
        covered = frozenset(events.committed_ids(studio_id, after=seq - covered_margin))
        snapshot = studio_snapshot(studio_id)
    return SnapshotFrame(seq, covered, json.dumps({"type": "snapshot", "seq": seq, "snapshot": snapshot}))


def studio_snapshot(studio_id: int, *, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    studio = Studio.objects.get(pk=studio_id)
    channels = list(Channel.objects.filter(studio=studio).select_related("node").order_by("name"))
    return {
        "studio": {"id": studio.pk, "name": studio.name, "time_zone": studio.time_zone},
        "server_time": iso(now),
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


def _channels(channels: list[Channel], now: datetime) -> list[dict]:
    ids = [channel.pk for channel in channels]
    on_air = {row.channel_id: row for row in
              AsRunEntry.objects.filter(channel_id__in=ids, ended_at__isnull=True).select_related("scheduled_item", "channel")}
    recording = {row.channel_id: row for row in
                 ShowRecording.objects.filter(channel_id__in=ids, status=ShowRecording.Status.RECORDING)
                 .select_related("show").order_by("channel_id", "-slot_start").distinct("channel_id")}
    following = {item.channel_id: item for item in
                 ScheduledItem.objects.filter(channel_id__in=ids, start_at__gt=now).order_by("channel_id", "start_at")
                 .distinct("channel_id")}
    return [{
        **channel_row(channel, now, recording=recording.get(channel.pk)),
        "on_air": as_run_row(on_air[channel.pk]) if channel.pk in on_air else None,
        "next": item_row(following[channel.pk]) if channel.pk in following else None,
    } for channel in channels]


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
        "start_at": iso(instance.start_at), "end_at": iso(instance.end_at), "status": "scheduled",
    } for instance in ShowInstance.objects.filter(channel__studio=studio, cancelled=False, end_at__gt=now, start_at__lt=until)
        .select_related("show").order_by("start_at")]
    bars += [{
        "kind": "recording", "id": window.pk, "lane": f"recorder-{window.recorder_id}", "title": window.name,
        "start_at": iso(window.start_at), "end_at": iso(window.end_at), "status": window.status,
    } for window in RecorderSchedule.objects.filter(recorder__studio=studio, end_at__gt=now, start_at__lt=until)
        .exclude(status=RecorderSchedule.Status.CANCELLED).order_by("start_at")]
    lanes = [{"id": f"channel-{channel.pk}", "title": channel.name} for channel in channels]
    lanes += [{"id": f"recorder-{recorder.pk}", "title": recorder.name} for recorder in studio.recorders.order_by("name")]
    return {"from": iso(now), "until": iso(until), "lanes": lanes, "bars": bars,
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
        cursor = iso(now)
        for bar in sorted((b for b in bars if b["lane"] == lane), key=lambda b: b["start_at"]):
            if bar["start_at"] > cursor:
                gaps.append({"lane": lane, "start_at": cursor, "end_at": bar["start_at"]})
            cursor = max(cursor, bar["end_at"])
        if cursor < iso(until):
            gaps.append({"lane": lane, "start_at": cursor, "end_at": iso(until)})
    return gaps
