"""State changes of playout channels, and of the media their upcoming shows play.

What an agent writes for a channel carries the channel's lease epoch as the agent started its
engine (``epoch``) and is refused (``station.fencing.Fenced``) once the channel moved to another
node or the node's agent was replaced: a frozen or cut-off agent never writes over its successor.
"""

import contextlib
import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ingest.models import MediaAsset
from playout.events import as_run_row, channel_recording_now, channel_row, next_item_row
from playout.models import AsRunEntry, Channel, LiveCredential, PlaylistItem, ScheduledItem, ShowInstance
from playout.outputs import OUTPUTS
from playout.selectors import missed_probes_cutoff
from station import events, fencing, metrics
from station.errors import UserError
from station.locks import rundown_lock, timeline_lock
from station.models import Alert, EventType, Node
from station.services import alert_raise, alerts_clear

logger = logging.getLogger(__name__)


def channel_announce(channel: Channel) -> None:
    """Its state to the studio's dashboards and webhooks (``playout.channel``), once the change commits."""
    events.publish(studio_id=channel.studio_id, type=EventType.CHANNEL,
                   payload=channel_row(channel, timezone.now(), channel_recording_now(channel.pk)))


@transaction.atomic
def channel_restart(*, channel: Channel) -> Channel:
    """Ask the channel's node agent to (re)start its engine; a channel with no live node is placed on one."""
    placement = {}
    if not channel.is_hardware and (channel.node is None or not channel.node.is_online()):
        target = _healthy_node_for(channel, timezone.now())
        if target is not None:
            placement["node"] = target
    channel.move_to(Channel.Status.STARTING, restart_count=F("restart_count") + 1, error_message="", **placement)
    channel_announce(channel)
    return channel


@transaction.atomic
def channel_mark_running(*, channel: Channel, node, epoch: int, now) -> bool:
    """The engine on ``node`` answers: the channel is on air there. False if it was stopped."""
    fencing.hold(Channel, pk=channel.pk, epoch=epoch)
    moved = Channel.objects.filter(pk=channel.pk, node=node).move_to(
        Channel.Status.RUNNING, last_heartbeat_at=now, error_message="", updated_at=now
    )
    if moved:
        channel.refresh_from_db()
        for code in ("channel_engine_failing", "channel_no_failover"):  # back on air: what the desk was told is over
            alerts_clear(studio_id=channel.studio_id, code=code, subject=channel.name)
        channel_announce(channel)
    return bool(moved)


@transaction.atomic
def channel_engine_failing(*, channel: Channel, node, epoch: int, retry_in: float, reason: str) -> None:
    """The channel's engine keeps dying on ``node``, which tries it again in ``retry_in`` s; the desk is told (the
    health job moves the channel to another node meanwhile if one can take it)."""
    fencing.hold(Channel, pk=channel.pk, epoch=epoch)
    alert_raise(studio=channel.studio_id, code="channel_engine_failing", subject=channel.name,
                severity=Alert.Severity.CRITICAL,
                message=_("Liquidsoap keeps dying on %(node)s (%(reason)s); it is tried there again in %(seconds)d s.")
                % {"node": node, "reason": reason or _("no last words"), "seconds": retry_in})


@transaction.atomic
def channel_retry(*, channel_id: int, node, epoch: int, restart_count: int, now) -> bool:
    """The channel's node starts its engine again: it died (the node restarts it at once), or the node's rest from
    an engine that kept dying is over (from error too). Unless it was stopped or restarted meanwhile, it is starting
    there, so the health job waits for the engine as for any starting one. True if it was."""
    fencing.hold(Channel, pk=channel_id, epoch=epoch)
    moved = Channel.objects.filter(
        pk=channel_id, node=node, restart_count=restart_count,
        status__in=[Channel.Status.ERROR, Channel.Status.STARTING, Channel.Status.RUNNING],
    ).move_to(Channel.Status.STARTING, updated_at=now)
    if moved:
        channel_announce(Channel.objects.get(pk=channel_id))
    return bool(moved)


@transaction.atomic
def channels_resume_on_node(*, node, now) -> int:
    """The node's agent starts: its channels in error are tried there again. One that no node could take while the
    agent was away (a one-node station) comes back with it; one whose settings are invalid fails again, with its
    reason. Return how many."""
    drives_engine = [name for name, output in OUTPUTS.items() if output.drives_engine]
    in_error = list(Channel.objects.filter(node=node, status=Channel.Status.ERROR, output_type__in=drives_engine)
                    .values_list("pk", flat=True))
    if not in_error:
        return 0
    moved = Channel.objects.filter(pk__in=in_error, node=node).move_to(Channel.Status.STARTING, updated_at=now)
    for channel in Channel.objects.filter(pk__in=in_error, node=node, status=Channel.Status.STARTING):
        channel_announce(channel)
    return moved


@transaction.atomic
def channel_mark_error(*, channel: Channel, node, epoch: int, reason: str, code: str) -> bool:
    """The channel's agent cannot run it (its settings, its engine): it is in error with the reason, once."""
    fencing.hold(Channel, pk=channel.pk, epoch=epoch)
    return _channel_error(channel, reason, code=code, node=node,
                          status__in=[Channel.Status.STARTING, Channel.Status.RUNNING])


@transaction.atomic
def channel_report_healthy(*, leases: dict[int, int], node, now) -> set[int]:
    """Heartbeat of the engines an agent runs (channel id: the epoch its engine started with), which the health job
    checks; return the channels it no longer holds (moved elsewhere since: their engines must stop)."""
    held = fencing.hold_each(Channel, leases)
    Channel.objects.filter(pk__in=held, node=node, status=Channel.Status.RUNNING).update(last_heartbeat_at=now)
    return set(leases) - held


@transaction.atomic
def channel_on_air(*, channel_id: int, epoch: int, at, title: str, result: str, asset_id=None,
                   scheduled_item_id=None, node=None, live_credential: LiveCredential | None = None) -> AsRunEntry:
    """What is on air changed: close the channel's open as-run row with its duration and open one for now (a live
    segment names its presenter)."""
    fencing.hold(Channel, pk=channel_id, epoch=epoch)  # also keeps two writers of one channel's log in turn
    open_row = _as_run_close(channel_id, at)
    slot = (ScheduledItem.objects.filter(pk=scheduled_item_id).values_list("start_at", flat=True).first()
            if scheduled_item_id else None)
    entry = AsRunEntry.objects.create(
        channel_id=channel_id, started_at=at, title=title[:300], result=result, node=node,
        asset_id=asset_id if asset_id and MediaAsset.objects.filter(pk=asset_id).exists() else None,
        scheduled_item_id=scheduled_item_id if slot else None,
        live_credential=live_credential, presenter=live_credential.presenter if live_credential else "",
    )
    if result == AsRunEntry.Result.LIVE:  # the presenter is back: a loss the desk was told of is over
        alerts_clear(studio_id=entry.channel.studio_id, code="live_source_lost", subject=entry.channel.name)
    if slot and result == AsRunEntry.Result.PLAYED:
        transaction.on_commit(partial(metrics.ON_AIR_START_ERROR.labels(channel=entry.channel.slug).observe,
                                      (at - slot).total_seconds()))
    events.publish(
        studio_id=entry.channel.studio_id,
        type=EventType.ON_AIR,
        payload={"channel": channel_id, "entry": as_run_row(entry),
                 "closed": as_run_row(open_row) if open_row else None,
                 "next": next_item_row(channel_id, at)},
    )
    return entry


def _as_run_close(channel_id: int, at) -> AsRunEntry | None:
    """Close the channel's open as-run row at ``at`` (not before it began) with its duration; return it, if any."""
    open_row = AsRunEntry.objects.select_for_update().filter(channel_id=channel_id, ended_at__isnull=True).first()
    if open_row is not None:
        open_row.ended_at = max(at, open_row.started_at)
        open_row.duration_seconds = (open_row.ended_at - open_row.started_at).total_seconds()
        AsRunEntry.objects.filter(pk=open_row.pk).update(ended_at=open_row.ended_at, duration_seconds=open_row.duration_seconds)
    return open_row


@transaction.atomic
def channel_dead_air(*, channel_id: int, epoch: int, began_at: datetime, silent_seconds: float, moved_on: bool,
                     title: str, asset_id=None, scheduled_item_id=None, node=None) -> AsRunEntry | None:
    """The engine found its output silent for ``silent_seconds`` since ``began_at`` while ``title`` was on air
    (playout.dead_air). If it moved on to the filler, the as-run log holds the dead air until what came next;
    otherwise (no filler to play) ``title`` plays on, and only the desk is told. Either way it is alerted."""
    fencing.hold(Channel, pk=channel_id, epoch=epoch)
    entry = channel_on_air(channel_id=channel_id, epoch=epoch, at=began_at, title=title,
                           result=AsRunEntry.Result.DEAD_AIR, asset_id=asset_id,
                           scheduled_item_id=scheduled_item_id, node=node) if moved_on else None
    channel = Channel.objects.get(pk=channel_id)
    details = {"channel": channel, "seconds": silent_seconds, "start": began_at.isoformat(timespec="seconds"),
               "title": title}
    alert_raise(studio=channel.studio_id, code="dead_air", subject=channel.name, severity=Alert.Severity.CRITICAL,
                message=(_("Dead air on %(channel)s: its output was silent for %(seconds).1f s from %(start)s, during "
                           "%(title)s. The engine moved on to the filler.") if moved_on else
                         _("Dead air on %(channel)s: its output was silent for %(seconds).1f s from %(start)s, during "
                           "%(title)s, and no filler could take over: it plays on.")) % details)
    transaction.on_commit(partial(metrics.SILENT_AIR.labels(channel=channel.slug).inc, silent_seconds))
    return entry


@transaction.atomic
def channel_live_lost(*, channel_id: int, epoch: int, credential_id: int | None) -> None:
    """A presenter's source dropped during their slot and did not come back within the channel's grace: the schedule
    or the filler is on air again (the as-run log says so as it happens), and the desk is told."""
    fencing.hold(Channel, pk=channel_id, epoch=epoch)
    channel = Channel.objects.get(pk=channel_id)
    credential = LiveCredential.objects.select_related("show").filter(pk=credential_id).first()
    alert_raise(studio=channel.studio_id, code="live_source_lost", subject=channel.name,
                message=_("The live source of %(presenter)s (%(show)s) dropped for over %(grace)g s: the schedule or "
                          "the filler is on %(channel)s again until they reconnect.") % {
                    "presenter": credential.presenter if credential else _("a presenter"),
                    "show": credential.show.name if credential else "-", "grace": channel.live_grace_seconds,
                    "channel": channel.name})


def _healthy_node_for(channel: Channel, now, unavailable: set[int] = frozenset()):
    """The least busy online node, other than the channel's and ``unavailable``, that can run its output."""
    candidates = [
        node for node in Node.objects.filter(enabled=True).exclude(pk__in=[channel.node_id, *unavailable])
        .annotate(load=Count("channels"))
        .order_by("load", "name")
        if node.is_online(now) and channel.required_capability in (node.capabilities or [])
    ]
    return candidates[0] if candidates else None


def channels_check_health(*, now, agents_gone: set[int] = frozenset()) -> dict:
    """Fail over channels whose engine missed three probes (or never came up); hardware ones only alert.

    On the nodes in ``agents_gone`` (their agent's session ended: ``station.presence``) the engines died with their
    agent: a probe period and a half without one is enough, the margin for a live agent that only reconnected.
    """
    missed_after = missed_probes_cutoff(now)
    never_up_after = now - timedelta(seconds=settings.PLAYOUT_STARTUP_GRACE_SECONDS)
    agent_gone_after = now - timedelta(seconds=settings.PLAYOUT_PROBE_SECONDS * 1.5)
    failing = Channel.objects.filter(
        Q(status=Channel.Status.RUNNING, last_heartbeat_at__lt=missed_after)
        | Q(status=Channel.Status.STARTING, updated_at__lt=never_up_after)
        | Q(node__in=agents_gone, status=Channel.Status.RUNNING, last_heartbeat_at__lt=agent_gone_after)
        | Q(node__in=agents_gone, status=Channel.Status.STARTING, updated_at__lt=agent_gone_after)
    ).select_related("node", "studio")
    outcome = {"failed_over": 0, "alerted": 0}
    for channel in failing:
        moved = channel_fail_over(channel=channel, now=now, unavailable=agents_gone)
        outcome["failed_over" if moved else "alerted"] += 1
    return outcome


@transaction.atomic
def channel_fail_over(*, channel: Channel, now, unavailable: set[int] = frozenset()) -> bool:
    """Move a dead channel's engine to a healthy node (network outputs), none of ``unavailable``; True if it was moved."""
    where = channel.node.name if channel.node_id else "?"
    if channel.is_hardware:
        reason = _("Engine on %(node)s stopped answering; a hardware output stays on its host: recover it there.") % {"node": where}
        _channel_error(channel, reason, code="channel_hardware_down", status=channel.status, updated_at=channel.updated_at)
        return False
    target = _healthy_node_for(channel, now, unavailable=unavailable)
    if target is None:
        _channel_error(channel, _("Engine on %(node)s stopped answering and no healthy node can take it over.") % {"node": where},
                       code="channel_no_failover", status=channel.status, updated_at=channel.updated_at)
        return False
    moved = Channel.objects.filter(pk=channel.pk, node_id=channel.node_id, status=channel.status, updated_at=channel.updated_at).move_to(
        Channel.Status.STARTING, node=target, restart_count=F("restart_count") + 1, updated_at=now,
        error_message=_("Failed over from %(node)s") % {"node": where},
    )
    if moved:
        _as_run_close(channel.pk, channel.last_heartbeat_at or now)  # on air there until then, as far as anyone knows
        channel.refresh_from_db()
        transaction.on_commit(metrics.CHANNEL_FAILOVERS.labels(channel=channel.slug).inc)
        alert_raise(studio=channel.studio_id, code="channel_failed_over", subject=channel.name,
                    message=_("%(channel)s failed over from %(old)s to %(new)s.") % {"channel": channel, "old": where, "new": target})
        channel_announce(channel)
    return bool(moved)


def _channel_error(channel: Channel, reason, *, code: str, **still) -> bool:
    """Put the channel in error with the reason and alert, if it is ``still`` as the caller saw it; True if so."""
    if not Channel.objects.filter(pk=channel.pk, **still).move_to(Channel.Status.ERROR, error_message=str(reason)):
        return False
    # off air since its engine was last heard: the row on air then ends there, not when the channel is back
    _as_run_close(channel.pk, channel.last_heartbeat_at or timezone.now())
    channel.refresh_from_db()
    alert_raise(studio=channel.studio_id, code=code, subject=channel.name, severity=Alert.Severity.CRITICAL, message=str(reason))
    channel_announce(channel)
    return True


@transaction.atomic
def channel_pause(*, channel: Channel) -> Channel:
    """Put the channel to silence on purpose (its agent switches the engine over at once)."""
    return _set_paused(channel, True)


@transaction.atomic
def channel_resume(*, channel: Channel) -> Channel:
    """Back on air from a pause: the schedule (or the filler) plays again."""
    return _set_paused(channel, False)


def _set_paused(channel: Channel, paused: bool) -> Channel:
    if not Channel.objects.filter(pk=channel.pk, paused=not paused).update(paused=paused, updated_at=timezone.now()):
        raise UserError(
            "already_paused" if paused else "not_paused",
            _("%(channel)s is already paused.") if paused else _("%(channel)s is not paused."),
            {"channel": channel.name},
        )
    channel.refresh_from_db()
    channel_announce(channel)
    return channel


@transaction.atomic
def channel_skip(*, channel: Channel) -> Channel:
    """Take what is on air off now; the schedule (or the filler) continues."""
    if channel.status != Channel.Status.RUNNING:
        raise UserError("channel_not_running", _("%(channel)s is not on air; there is nothing to skip."),
                        {"channel": channel.name})
    Channel.objects.filter(pk=channel.pk).update(skip_requested_at=timezone.now())
    channel.refresh_from_db()
    channel_announce(channel)
    return channel


SKIPPABLE = [AsRunEntry.Result.PLAYED, AsRunEntry.Result.FALLBACK]  # what the schedule puts on air


@transaction.atomic
def as_run_mark_skipped(*, channel_id: int, epoch: int) -> None:
    """The item on air was taken off by an operator: its row says so when it closes. A skip takes off what the
    schedule plays (an item, the filler): a presenter on air stays, and so does their row."""
    fencing.hold(Channel, pk=channel_id, epoch=epoch)
    AsRunEntry.objects.filter(channel_id=channel_id, ended_at__isnull=True, result__in=SKIPPABLE).update(
        result=AsRunEntry.Result.SKIPPED)


def asset_replaced_in_upcoming_shows(*, old_id: int, new: MediaAsset, now: datetime, **signal) -> None:
    """Receive ingest's ``asset_replaced``: the new media goes where upcoming shows had the old."""
    asset_replace_in_upcoming_shows(old_id=old_id, new=new, now=now)


@transaction.atomic
def asset_replace_in_upcoming_shows(*, old_id: int, new: MediaAsset, now: datetime) -> int:
    """Put ``new`` where playlists had the old asset, under the rundown locks, then the timeline locks.

    The timeline's future items change in the same transaction, so each channel's
    agent is notified at commit and plays the new media; it re-times the items if
    the length changed. Returns the playlist items changed.
    """
    items = PlaylistItem.objects.filter(asset_id=old_id)
    playlists = set(items.values_list("playlist_id", flat=True))
    if not playlists:
        return 0
    upcoming = ShowInstance.objects.filter(cancelled=False, end_at__gt=now).filter(
        Q(playlist_id__in=playlists) | Q(playlist__isnull=True, show__playlist_id__in=playlists))
    shows = sorted(set(upcoming.values_list("show_id", flat=True)))
    channels = sorted(set(upcoming.values_list("channel_id", flat=True)))
    with contextlib.ExitStack() as held:
        # Rundown before timeline, ids ascending: every process takes them in this one order.
        for show_id in shows:
            held.enter_context(rundown_lock(show_id))
        for channel_id in channels:
            held.enter_context(timeline_lock(channel_id))
        changed = items.update(asset=new)
        ScheduledItem.objects.filter(asset_id=old_id, channel_id__in=channels, start_at__gte=now).update(
            asset=new, title=new.title[:300])
    logger.info("asset %s replaced by %s in %d playlist items (%d shows)", old_id, new.pk, changed, len(shows))
    return changed
