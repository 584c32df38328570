"""Decide which channels run on this node, and which items to fetch and to dispatch soon."""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import Q

from ingest.models import MediaAsset
from playout.agent.launcher import RunningChannel
from playout.cacher import HORIZON as CACHE_HORIZON
from playout.models import Channel, ScheduledItem
from playout.outputs import OUTPUTS

DISPATCH_HORIZON = timedelta(minutes=5)
WEBSTREAM_CHECK_AHEAD = timedelta(minutes=10)  # an answer further ahead says little about the slot


def wanted_channels(node) -> dict[int, Channel]:
    """The channels starting or running on the node whose output an engine drives, by id."""
    return {
        channel.pk: channel
        for channel in Channel.objects.filter(
            node=node, status__in=[Channel.Status.STARTING, Channel.Status.RUNNING]
        ).exclude(output_type__in=[name for name, output in OUTPUTS.items() if not output.drives_engine])
        .select_related("fallback_playlist")
    }


def channels_due_on_air(node, wanted: dict[int, Channel], resting: Iterable[int]) -> dict[int, str]:
    """Slug by id of the channels the node should have on air: those it runs, and those resting here after crashes,
    which it tries again from error too (crashes.py), unless moved or stopped meanwhile."""
    due = {pk: channel.slug for pk, channel in wanted.items()}
    if resting:
        due.update(Channel.objects.filter(
            pk__in=list(resting), node=node,
            status__in=[Channel.Status.ERROR, Channel.Status.STARTING, Channel.Status.RUNNING],
        ).values_list("pk", "slug"))
    return due


def restart_asked(current: RunningChannel, channel: Channel) -> bool:
    """Whether someone restarted the channel since its engine here started."""
    return channel.status == Channel.Status.STARTING and channel.restart_count > current.started_at_restart


def items_to_cache(channel_ids: list[int], now: datetime) -> list[ScheduledItem]:
    """The channels' items with media or a webstream within the cache's horizon, in time order."""
    return list(
        ScheduledItem.objects.filter(
            channel_id__in=channel_ids, start_at__lte=now + CACHE_HORIZON, end_at__gt=now
        ).filter(Q(asset__isnull=False) | ~Q(webstream_url="")).select_related("asset", "channel").order_by("start_at")
    )


def items_to_dispatch(channel_ids: list[int], now: datetime) -> list[ScheduledItem]:
    return list(
        ScheduledItem.objects.filter(
            channel_id__in=channel_ids, start_at__lte=now + DISPATCH_HORIZON, end_at__gt=now
        ).select_related("asset").order_by("start_at")
    )


def cache_wants(channels: Iterable[RunningChannel], coming: list[ScheduledItem]) -> list[tuple[float, MediaAsset]]:
    """The assets to have on this node, by when they are needed: fillers first."""
    return ([(0.0, asset) for running in channels for asset in running.filler_assets]
            + [(item.start_at.timestamp(), item.asset) for item in coming if item.asset_id])


def webstreams_to_try(coming: list[ScheduledItem], now: datetime) -> list[tuple[float, str]]:
    return [(item.start_at.timestamp(), item.webstream_url) for item in coming
            if item.webstream_url and item.start_at <= now + WEBSTREAM_CHECK_AHEAD]
