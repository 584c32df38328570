"""The scheduler: turns shows and playlists into the channel timeline the dispatcher plays.

Shows recur in their studio's time zone (same rules as recorder windows); each
window becomes a ShowInstance, and each instance's playlist becomes
ScheduledItems at exact times, cut at the show's end. Rebuilding is idempotent:
an instance whose items already match is left alone, so the node agent can call
this on every change notification and on its re-arm cadence.
"""

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from playout.models import Channel, ScheduledItem, Show, ShowInstance
from station.locks import rundown_lock, timeline_lock
from station.errors import UserError, constraint_errors
from station.services import alert_raise

logger = logging.getLogger(__name__)
HORIZON = timedelta(hours=6)
SERIES_LIMIT = 500  # windows read per show and refresh: a rule that recurs each minute still costs a bounded pass


def timeline_refresh(*, channel: Channel, now: datetime, horizon: timedelta = HORIZON) -> int:
    """Bring the channel's instances and items for the coming hours in line with its shows; return items written."""
    until = now + horizon
    for show in Show.objects.filter(channel=channel).select_related("channel__studio"):
        try:
            _materialize(show, now, until)
        except UserError as error:  # a rule written around validation: that show is left out, the others air
            alert_raise(studio=channel.studio_id, code="show_not_scheduled", subject=show.name,
                        message=_("%(show)s is not scheduled: %(reason)s") % {"show": show.name, "reason": error})
    written = 0
    instances = ShowInstance.objects.filter(channel=channel, cancelled=False, show__enabled=True, end_at__gt=now,
                                            start_at__lt=until)
    for instance in instances.select_related("show", "playlist", "show__playlist"):
        try:
            with constraint_errors():
                written += _build_items(instance, now)
        except (UserError, IntegrityError) as error:  # a slot that can't be placed (a row no rule made): others air
            alert_raise(studio=channel.studio_id, code="show_not_scheduled", subject=instance.show.name,
                        message=_("%(show)s at %(start)s could not be put on the timeline: %(reason)s")
                        % {"show": instance.show.name, "start": instance.start_at.isoformat(), "reason": error})
    return written


def _series_windows(show: Show, now: datetime, until: datetime) -> tuple[dict[datetime, datetime], datetime]:
    """The show's windows not yet over that start before ``until`` (start: end), and how far they were read: the
    expansion is bounded in count, so a dense rule may stop short of ``until``."""
    windows, read = {}, 0
    for start, end in show.series_windows(not_before=now - show.duration, limit=SERIES_LIMIT):
        if start >= until:
            return windows, until
        if end > now:
            windows[start] = end
        read += 1
        if read == SERIES_LIMIT:
            return windows, start
    return windows, until


def _materialize(show: Show, now: datetime, until: datetime) -> None:
    """Make the show's slots for its coming windows, and bring those the series made in line with it: a slot not yet
    begun whose window is gone (the show was moved, given a skip date) goes, one whose window now ends
    elsewhere follows it; a slot moved or resized by hand stays as it was put. The items of a slot cancelled, or of
    a disabled show, leave the timeline before they start."""
    if not show.enabled:  # its slots stay as they are (cancelled ones too) for when it is enabled again
        with rundown_lock(show.pk):
            ScheduledItem.objects.filter(instance__show=show, start_at__gte=now).delete()
        return
    windows, read_to = _series_windows(show, now, until)
    with rundown_lock(show.pk):
        made = show.instances.filter(occurrence_start_at__isnull=False, start_at__gt=now,
                                     occurrence_start_at__lt=read_to)
        for instance in made:
            if not instance.follows_its_series:
                continue
            end = windows.get(instance.occurrence_start_at)
            if end is None:
                if not instance.cancelled:  # a cancelled one keeps its window from being made again
                    instance.delete()
            elif end != instance.end_at:
                _place(show, instance, start=instance.start_at, end=end)
        for start, end in windows.items():
            if not show.instances.filter(Q(occurrence_start_at=start) | Q(start_at=start)).exists():
                _place(show, ShowInstance(show=show, channel=show.channel), start=start, end=end)
        ScheduledItem.objects.filter(instance__show=show, instance__cancelled=True, start_at__gte=now).delete()


def _place(show: Show, instance: ShowInstance, *, start: datetime, end: datetime) -> None:
    instance.start_at = instance.occurrence_start_at = start
    instance.end_at = instance.occurrence_end_at = end
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError:
        alert_raise(studio=show.channel.studio_id, code="show_overlap", subject=show.name,
                    message=_("%(show)s at %(start)s overlaps another show on %(channel)s and was not scheduled.")
                    % {"show": show.name, "start": start.isoformat(), "channel": show.channel})


def planned_items(instance: ShowInstance) -> list[dict]:
    """The items an instance plays, back to back from its start, the last one cut at its end."""
    playlist = instance.effective_playlist
    if playlist is None:
        return []
    planned, at = [], instance.start_at
    for entry in playlist.items.select_related("asset").order_by("position", "id"):
        length = entry.play_seconds
        if not length or at >= instance.end_at:
            continue
        end = min(at + timedelta(seconds=length), instance.end_at)
        planned.append({
            "playlist_item_id": entry.pk, "asset_id": entry.asset_id, "webstream_url": entry.webstream_url,
            "title": str(entry)[:300], "start_at": at, "end_at": end, "cue_in_seconds": entry.cue_in_seconds,
        })
        at = end
    return planned


PLAN_FIELDS = ("playlist_item_id", "asset_id", "start_at", "end_at", "cue_in_seconds")


def _plan_key(row: dict) -> tuple:
    return tuple(row[name] for name in PLAN_FIELDS)


def _report_fit(instance: ShowInstance, planned: list[dict]) -> None:
    """Tell the desk, once, when a show's playlist overruns its slot (cut) or leaves a gap (filler)."""
    if not planned:
        return
    playlist = instance.effective_playlist
    total = playlist.total_seconds()
    slot = (instance.end_at - instance.start_at).total_seconds()
    start = instance.start_at.isoformat()
    if total > slot + 0.5:
        alert_raise(studio=instance.channel.studio_id, code="show_overrun", subject=str(instance.show),
                    message=_("%(show)s at %(start)s: its playlist runs %(over).0f s past the show's end and will be cut.")
                    % {"show": instance.show, "start": start, "over": total - slot})
    elif total < slot - 0.5:
        alert_raise(studio=instance.channel.studio_id, code="show_gap", subject=str(instance.show),
                    message=_("%(show)s at %(start)s: its playlist ends %(gap).0f s before the show does; the filler will play.")
                    % {"show": instance.show, "start": start, "gap": slot - total})


def _build_items(instance: ShowInstance, now: datetime) -> int:
    """Write the instance's coming items where they differ from its plan; return how many were written. An item
    the plan keeps is left as it is, with its id: the engine may already hold it, queued for its slot."""
    planned = planned_items(instance)
    future = {_plan_key(row): row for row in planned if row["start_at"] >= now}
    existing = {_plan_key(row): row["id"] for row in ScheduledItem.objects.filter(
        instance=instance, start_at__gte=now).values("id", *PLAN_FIELDS)}
    # the slot was cut short while on air: its item on air ends with it
    overrunning = ScheduledItem.objects.filter(instance=instance, start_at__lt=now, end_at__gt=instance.end_at)
    if existing.keys() == future.keys() and not overrunning.exists():
        return 0
    _report_fit(instance, planned)
    to_write = [row for key, row in future.items() if key not in existing]
    with rundown_lock(instance.show_id), timeline_lock(instance.channel_id):
        ScheduledItem.objects.filter(pk__in=[pk for key, pk in existing.items() if key not in future]).delete()
        overrunning.update(end_at=instance.end_at)
        if future:  # the item on air now makes way for the new plan where they would overlap
            first_start = min(row["start_at"] for row in future.values())
            ScheduledItem.objects.filter(instance=instance, start_at__lt=now, end_at__gt=first_start).update(
                end_at=first_start)
        ScheduledItem.objects.bulk_create(
            ScheduledItem(instance=instance, channel_id=instance.channel_id, **row) for row in to_write)
    logger.info("timeline of %s: %d items written, %d kept for %s", instance.channel_id, len(to_write),
                len(future) - len(to_write), instance)
    return len(to_write)
