"""Hand each channel's engine its next item ahead of its slot, and the operator's pause and skip."""

import logging
from datetime import datetime, timedelta

from django.utils.translation import gettext as _

from playout import services
from playout.agent.launcher import RunningChannel, dead_air_limits
from playout.cacher import MediaCache
from playout.liquidsoap import FRAME_SECONDS, StreamClock, quiet_annotation
from playout.loudness import asset_amplification
from playout.models import ScheduledItem
from playout.relay import WebstreamRelay
from station.errors import UserError
from station.models import Alert
from station.services import alert_raise

logger = logging.getLogger(__name__)
LATE_START_SECONDS = 0.5  # later than this, an item's cue point is advanced by its lateness
PREPARE_SECONDS = 2.0  # items are queued this early, so the engine has them resolved at their slot
WEBSTREAM_CONNECT_GRACE = timedelta(seconds=3)


def push_moments(channels: list[RunningChannel], upcoming: list[ScheduledItem]) -> list[float]:
    """When each item not yet handed to its engine is due to be queued (epoch seconds)."""
    pushed = set().union(*(running.pushed for running in channels))
    return [item.start_at.timestamp() - PREPARE_SECONDS for item in upcoming if item.pk not in pushed]


def gate_opens_at(item: ScheduledItem, now: datetime, clock: StreamClock) -> tuple[float, float]:
    """Where in the engine's stream its gate opens for the item (``Gateway.set_next_at``; 0: now), and by how much
    the item starts late (0 if on time: it goes on air on the first frame at or after its slot)."""
    lateness = (now - item.start_at).total_seconds()
    if lateness > LATE_START_SECONDS or clock.start is None:  # agent restart, late change: start now, further in
        return 0.0, max(lateness, 0.0)
    return clock.gate_for(item.start_at.timestamp()), 0.0


def cue_out(item: ScheduledItem, clock: StreamClock, advance: float) -> float:
    """Where in its media an item ends: at its slot's end, on the frame grid when it starts on time.

    The engine plays a file in whole frames, the part frame at its cue out left out. An item on time
    lasts the frames from its start's to its end's, half a frame more asked for so that it is cut
    there: the next item, queued behind it, follows on its own first frame, with no frame of filler
    between them and never early.
    """
    length = (item.end_at - item.start_at).total_seconds()
    if advance == 0 and clock.start is not None:
        frames = clock.first_frame_at(item.end_at.timestamp()) - clock.first_frame_at(item.start_at.timestamp())
        length = (frames + 0.5) * FRAME_SECONDS
    return item.cue_in_seconds + length


def apply_operator_actions(running: RunningChannel) -> None:
    """Pass the operator's pause and skip on to the engine, each once, and dead-air limits changed since it started."""
    channel, limits = running.channel, dead_air_limits(running.channel)
    try:
        if limits != running.applied_dead_air:
            running.engine.gateway.set_dead_air(*limits)
            running.applied_dead_air = limits
        if channel.paused != running.applied_paused:
            running.engine.gateway.set_paused(channel.paused)
            running.applied_paused = channel.paused
        if channel.skip_requested_at and channel.skip_requested_at != running.applied_skip:
            services.as_run_mark_skipped(channel_id=channel.pk, epoch=running.epoch)
            running.engine.gateway.skip()
            running.applied_skip = channel.skip_requested_at
            # the item skipped is off air: a cut for it later would take off the one after it
            armed = running.armed.pk if running.armed else None
            running.pushed.update({pk: None for pk in running.pushed if pk != armed})
    except OSError as error:
        logger.error("channel %s: engine did not take the operator's action: %s", channel, error)


class Dispatcher:
    """Queue each channel's next item ahead of its slot and tell the engine when to let it on air."""

    def __init__(self, *, cache: MediaCache, relay: WebstreamRelay):
        self.cache = cache
        self.relay = relay

    def dispatch(self, running: RunningChannel, now: datetime, *,
                 upcoming: list[ScheduledItem], unplayable: set[int]) -> None:
        """Hand the channel's engine its next item once it is due, unless one is still waiting for its slot."""
        self._cut_short(running, upcoming)
        if running.armed is not None and running.armed.webstream_url and not running.engine.webstream_connected \
                and now > min(running.armed.start_at + WEBSTREAM_CONNECT_GRACE, running.armed.end_at):
            self._webstream_unreachable(running)
            running.armed = None  # the filler covers it; what follows is armed on time
        if running.armed is not None and running.armed.end_at <= now:
            running.armed = None  # it never went on air (removed from the timeline); move on
        if running.armed is not None:
            return
        item = next((i for i in upcoming if i.channel_id == running.channel.pk and i.pk not in running.pushed), None)
        if item is None or item.start_at - timedelta(seconds=PREPARE_SECONDS) > now:
            return
        if running.engine.stream_clock.start is None and item.start_at > now:
            return  # the engine has not reported its first track yet: its frames are not placed on the clock
        running.pushed[item.pk] = None  # tried once; its end is noted once the engine holds it
        if item.pk in unplayable:
            return  # the filler covers it; the cacher already alerted
        if item.webstream_url:
            self._arm_webstream(running, item, now)
        elif item.asset_id:
            self._arm(running, item, now)

    def _cut_short(self, running: RunningChannel, upcoming: list[ScheduledItem]) -> None:
        """An item handed to the engine whose slot was cut short since (its show shortened on air) ends at its new end:
        the engine would play it to the end it was given, and every item after it late."""
        clock = running.engine.stream_clock
        for item in upcoming:
            given = running.pushed.get(item.pk)
            # a webstream is never given an end here: its window is the relay's to end, on the wall clock
            if item.channel_id != running.channel.pk or given is None or item.end_at >= given or clock.start is None:
                continue
            try:
                running.engine.gateway.cut_at(clock.gate_for(item.end_at.timestamp()))
                running.pushed[item.pk] = item.end_at
            except OSError as error:
                logger.error("channel %s: could not cut %s short: %s", running.channel, item, error)

    def _arm_webstream(self, running: RunningChannel, item: ScheduledItem, now: datetime) -> None:
        try:  # the webstream's window is on the wall clock: a network stream has no sample to start on
            running.engine.gateway.arm_webstream(item_id=item.pk, start=item.start_at.timestamp(), end=item.end_at.timestamp(),
                                                 relay_url=self.relay.url_for(item.pk, item.webstream_url))
            running.armed = item
        except OSError as error:
            logger.error("channel %s: could not arm %s: %s", running.channel, item, error)

    def _webstream_unreachable(self, running: RunningChannel) -> None:
        item = running.armed
        problem = self.relay.problem(item.pk) or _("no answer")
        alert_raise(
            studio=running.channel.studio_id, code="webstream_unreachable", subject=item.title,
            severity=Alert.Severity.CRITICAL,
            message=_("The webstream %(url)s for %(title)s on %(channel)s did not connect at its slot (%(problem)s). "
                      "The filler covers it.") % {"url": item.webstream_url, "title": item.title,
                                                  "channel": running.channel, "problem": problem},
        )

    def _arm(self, running: RunningChannel, item: ScheduledItem, now: datetime) -> None:
        clock = running.engine.stream_clock
        opens_at, advance = gate_opens_at(item, now, clock)
        cue_in = item.cue_in_seconds + advance
        amplify = asset_amplification(item.asset, target_lufs=running.channel.loudness_target_lufs,
                                      measured_here=self.cache.loudness.get(item.asset_id))
        annotations = {"sk_item": item.pk, "sk_asset": item.asset_id, **quiet_annotation(item.asset),
                       "liq_cue_in": round(cue_in, 6), "liq_cue_out": round(cue_out(item, clock, advance), 6),
                       "liq_amplify": amplify}
        path = self.cache.path_for(item.asset_id)
        if path is None:
            self.cache.unplayable([item], now_arming={item.pk})  # alerts; the filler covers it
            return
        try:
            # the gate first: the previous item's may still be open, and would let this one in at once
            running.engine.gateway.set_next_at(opens_at)
            running.engine.gateway.push(path, annotations)
            running.armed, running.pushed[item.pk] = item, item.end_at
        except UserError as error:  # a file name the engine can't be handed: the filler covers it
            alert_raise(studio=running.channel.studio_id, code="media_missing", subject=item.title,
                        severity=Alert.Severity.CRITICAL,
                        message=_("%(title)s on %(channel)s can't be played: %(reason)s The filler covers it.")
                        % {"title": item.title, "channel": running.channel, "reason": error})
        except OSError as error:
            logger.error("channel %s: could not queue %s: %s", running.channel, item, error)
