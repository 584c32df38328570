"""Reads of playout state for people (API, dashboards)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from playout.models import AsRunEntry, Channel, ScheduledItem


@dataclass(frozen=True)
class NowPlaying:
    channel: Channel
    on_air: AsRunEntry | None  # the channel's open as-run row
    next: ScheduledItem | None  # the first timeline item starting after now


def channel_now_playing(channel: Channel, *, now: datetime) -> NowPlaying:
    """What a channel has on air (its open as-run row) and what comes next on its timeline."""
    on_air = AsRunEntry.objects.filter(channel=channel, ended_at__isnull=True).select_related("asset").first()
    following = ScheduledItem.objects.filter(channel=channel, start_at__gt=now).order_by("start_at").first()
    return NowPlaying(channel=channel, on_air=on_air, next=following)


def missed_probes_cutoff(now: datetime) -> datetime:
    """A running channel last probed before this has missed its probes: it is unhealthy and fails over."""
    probe = timedelta(seconds=settings.PLAYOUT_PROBE_SECONDS)
    return now - probe * settings.PLAYOUT_MISSED_PROBES - probe / 2


def channel_is_healthy(channel: Channel, now: datetime) -> bool:
    """Running, and probed since the failover threshold (the health job's own test)."""
    return (channel.status == Channel.Status.RUNNING and channel.last_heartbeat_at is not None
            and channel.last_heartbeat_at >= missed_probes_cutoff(now))
