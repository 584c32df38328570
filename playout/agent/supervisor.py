"""The node agent's channel supervisor: one Liquidsoap per channel placed on this node.

It starts each engine with the channel's filler, marks the channel running once
the engine answers, pushes scheduled items at their slot, and turns the
engine's on-air reports into the as-run log; each of those is a module of this
package, and this class only puts them in order. What it writes for a channel carries
the lease epoch its engine started with: refused (the channel moved to another node
while this agent was frozen or cut off), the engine is stopped at once.
"""

import contextlib
import logging
import math
import threading
import time
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _

from playout import services
from playout.agent import planning
from playout.agent.as_run import AsRunLog
from playout.agent.crashes import CrashPolicy
from playout.agent.dispatch import Dispatcher, apply_operator_actions, push_moments
from playout.agent.fillers import FillerWriter, filler_assets
from playout.agent.launcher import EngineLauncher, RunningChannel, UnfitChannel
from playout.agent.air_records import AirRecorder
from playout.agent.live import LiveDoor, LiveWatch
from playout.cacher import MediaCache
from playout.models import Channel
from playout.relay import WebstreamRelay
from playout.timeline import timeline_refresh
from station import metrics
from station.fencing import Fenced
from station.notify import tables_of

logger = logging.getLogger(__name__)


class ChannelSupervisor:
    watches = tables_of("playout")  # the changes that call for ``on_change``

    def __init__(self, *, node):
        self.node = node
        self.channels: dict[int, RunningChannel] = {}
        self.upcoming = []
        self.unplayable: set[int] = set()
        self.fenced: set[int] = set()  # channels whose writes were refused (the prober finds them too): to stop
        self.relay = WebstreamRelay()
        self.live_door = LiveDoor()
        self.live = LiveWatch()
        self.air_records = AirRecorder(node)
        self.node_dir = Path(settings.PLAYOUT_CACHE_ROOT) / node.name
        self.cache = MediaCache(
            directory=self.node_dir / "media",
            shared_root=Path(settings.MEDIA_ROOT) if settings.PLAYOUT_SHARED_MEDIA else None,
            station_url=settings.STATION_URL, node=node,
        )
        self.crashes = CrashPolicy()
        self.as_run = AsRunLog()
        self.fillers = FillerWriter(self.cache)
        self.launcher = EngineLauncher(node_dir=self.node_dir, cache=self.cache, reports=self.as_run.reports,
                                       live_events=self.live.events, live_admit_url=self.live_door.url_for,
                                       air_recorded=self.air_records.closed)
        self.dispatcher = Dispatcher(cache=self.cache, relay=self.relay)
        self.due_on_air: dict[int, str] = {}  # id → slug of the channels this node should have on air
        # id → (since when, monotonic, and slug) of a channel due on air here with no engine answering; the prober
        # thread and the loop both write it
        self.down_since: dict[int, tuple[float, str]] = {}
        self.answered_at: dict[int, float] = {}  # id → when (monotonic) its engine last answered
        self.down_lock = threading.Lock()
        self.resumed = False  # whether this process took back its node's channels in error (rearm)

    # -- planning -----------------------------------------------------------------------------

    def rearm(self, now: datetime) -> None:
        if not self.resumed:  # this agent process's first pass
            services.channels_resume_on_node(node=self.node, now=now)
            self.resumed = True
        for pk, restart_count, epoch in self.crashes.rested():
            with contextlib.suppress(Fenced):  # moved to another node while it rested here
                services.channel_retry(channel_id=pk, node=self.node, epoch=epoch, restart_count=restart_count, now=now)
        wanted = planning.wanted_channels(self.node)
        self.due_on_air = planning.channels_due_on_air(self.node, wanted, self.crashes.resting)
        self.crashes.drop_given_up(wanted)
        for pk in list(self.channels):
            if pk not in wanted:
                logger.info("channel %s: no longer on this node; stopping its engine", self.channels[pk].channel)
                self.channels.pop(pk).engine.stop()
        for pk, channel in wanted.items():
            current = self.channels.get(pk)
            if current:
                current.channel = channel  # operators' pause and skip arrive with it
            if current and current.epoch != channel.lease_epoch:
                logger.info("channel %s: it was on another node since its engine started; starting it anew", channel)
                self.channels.pop(pk).engine.stop()
                current = None
            if current and planning.restart_asked(current, channel):
                logger.info("channel %s: restart asked; restarting its engine", channel)
                self.channels.pop(pk).engine.stop()
                current = None
            if current is None:
                with self._contained(channel, _("start its engine")):
                    self._start(channel)
        for running in self.channels.values():
            with self._contained(running.channel, _("build its timeline")):
                timeline_refresh(channel=running.channel, now=now)
        coming = planning.items_to_cache(list(self.channels), now)
        for running in self.channels.values():
            with self._contained(running.channel, _("read its filler playlist")):
                running.filler_assets = filler_assets(running.channel)
        self.cache.want(planning.cache_wants(self.channels.values(), coming))
        self.cache.try_webstreams(planning.webstreams_to_try(coming, now))
        self.unplayable = self.cache.unplayable(coming)
        self.fillers.write(self.channels.values())
        self.upcoming = planning.items_to_dispatch(list(self.channels), now)
        self.live.let_go_revoked(self.channels)
        self.air_records.fail_unfinished(now)

    def _start(self, channel: Channel) -> None:
        try:
            running = self.launcher.start(channel, node=self.node)
        except UnfitChannel:
            self.crashes.give_up(channel)
            return
        if running is not None:
            self.channels[channel.pk] = running

    @contextlib.contextmanager
    def _contained(self, channel: Channel, doing: str):
        try:
            with self.crashes.contained(channel, doing, node=self.node):
                yield
        except Fenced:
            self.fenced.add(channel.pk)

    def _stop_fenced(self) -> None:
        """Stop the engines of channels another node holds now: this one writes nothing more for them."""
        for pk in list(self.fenced):
            self.fenced.discard(pk)
            running = self.channels.pop(pk, None)
            if running is not None:
                logger.warning("channel %s: another node holds it now (lease epoch %s is stale); stopping its engine",
                               running.channel, running.epoch)
                running.engine.stop()

    def next_deadline(self) -> float | None:
        if not self.channels:
            return None
        # on-air reports are logged promptly
        return min([*push_moments(list(self.channels.values()), self.upcoming), time.time() + 0.05])

    # -- acting -------------------------------------------------------------------------------

    def step(self, now: datetime) -> None:
        self._stop_fenced()
        for running in list(self.channels.values()):
            with self._contained(running.channel, _("watch its engine")):
                if not running.engine.alive():
                    self._engine_died(running, now)
                    continue
                if not running.running and running.engine.gateway.alive():
                    running.running = True
                    self._dead_air_ends(running.channel.pk)
                    if not services.channel_mark_running(channel=running.channel, node=self.node, epoch=running.epoch,
                                                         now=now):
                        logger.warning("channel %s: engine up, but the channel is no longer starting here", running.channel)
                    self._reload_filler(running)
                if running.running:
                    apply_operator_actions(running)
        if self.fillers.stale():
            self.fillers.write(self.channels.values())
        for running in self.channels.values():
            if running.running:
                with self._contained(running.channel, _("queue its next item")):
                    self.dispatcher.dispatch(running, now, upcoming=self.upcoming, unplayable=self.unplayable)
        self.fenced |= self.as_run.log(self.channels, self.upcoming, node=self.node)
        self.fenced |= self.live.apply(self.channels)
        self.fenced |= self.air_records.step(self.channels, now)
        self._stop_fenced()

    @staticmethod
    def _reload_filler(running: RunningChannel) -> None:
        """Liquidsoap reads the filler list, then starts watching it: a write in between (the cacher is quick) would
        go unseen and the filler stay empty. It watches by the time it answers, so it reads the list again then."""
        if not running.channel.fallback_playlist_id:
            return
        try:
            running.engine.gateway.reload_filler()
        except OSError as error:  # the engine's own watch still sees the next write
            logger.warning("channel %s: the engine did not reload its filler list: %s", running.channel, error)

    def _engine_died(self, running: RunningChannel, now: datetime) -> None:
        self.channels.pop(running.channel.pk)
        self._dead_air_begins(running.channel.pk, running.channel.slug)
        rest = self.crashes.engine_died(running)
        if rest is None:
            # Starting again here, said first: the health job gives a starting engine its startup grace, where the
            # missed probes of a running one would move the channel while it is coming back (a second cold start).
            services.channel_retry(channel_id=running.channel.pk, node=self.node, epoch=running.epoch,
                                   restart_count=running.channel.restart_count, now=now)
            self._start(running.channel)
            if restarted := self.channels.get(running.channel.pk):  # a filler write before the next re-arm lists them
                restarted.filler_assets = running.filler_assets
        else:
            with contextlib.suppress(Fenced):  # it is another node's now: nothing to tell
                services.channel_engine_failing(channel=running.channel, node=self.node, epoch=running.epoch,
                                                retry_in=rest, reason=running.engine.last_words())

    def probe(self, now: datetime) -> None:
        """Ask each engine over telnet whether it is up; report the ones that answer (the health job reads it).

        The agent calls this from its prober thread (station.agent), so engines that play on while
        the agent's loop is busy keep reporting healthy and are not failed over.
        """
        probed_at = time.monotonic()
        healthy = {pk: running.epoch for pk, running in list(self.channels.items())
                   if running.running and running.engine.gateway.alive()}
        if healthy:  # a channel moved elsewhere is stopped by the loop's next step, within a probe's time
            self.fenced |= services.channel_report_healthy(leases=healthy, node=self.node, now=now)
        self._count_dead_air(healthy, probed_at)
        for running in list(self.channels.values()):
            metrics.OUTPUT_LEVEL.labels(channel=running.channel.slug).set(running.engine.output_level_dbfs)

    def _count_dead_air(self, healthy: dict[int, int], probed_at: float) -> None:
        """Each channel due on air here is off air from when its engine was seen dead or not answering a probe
        until it answers again, or until it is no longer this node's to play."""
        due = self.due_on_air
        for pk, slug in due.items():
            if pk in healthy:
                self._dead_air_ends(pk, answered_at=probed_at)
            else:
                self._dead_air_begins(pk, slug, seen_at=probed_at)
        with self.down_lock:
            moved_away = set(self.down_since) - set(due)
        for pk in moved_away:
            self._dead_air_ends(pk)

    def _dead_air_begins(self, pk: int, slug: str, seen_at: float | None = None) -> None:
        """Off air since ``seen_at`` (now by default), unless its engine answered since (the loop saw it come up
        while a probe round was under way)."""
        seen_at = time.monotonic() if seen_at is None else seen_at
        with self.down_lock:
            if self.answered_at.get(pk, -math.inf) < seen_at:
                self.down_since.setdefault(pk, (seen_at, slug))

    def _dead_air_ends(self, pk: int, answered_at: float | None = None) -> None:
        """On air again at ``answered_at`` (now by default), unless it went off air after that (the loop saw its
        engine die while a probe round was under way)."""
        answered_at = time.monotonic() if answered_at is None else answered_at
        with self.down_lock:
            self.answered_at[pk] = max(self.answered_at.get(pk, -math.inf), answered_at)
            down = self.down_since.get(pk)
            if down is None or down[0] > answered_at:
                return
            del self.down_since[pk]
        since, slug = down
        metrics.DEAD_AIR.labels(channel=slug).inc(answered_at - since)

    # -- changes and heartbeats ---------------------------------------------------------------

    def on_change(self, now: datetime) -> None:
        self.rearm(now)

    def renew(self, now: datetime) -> None:
        """Engines report through their probes, on their own cadence."""

    def shutdown(self) -> None:
        for running in self.channels.values():
            running.engine.stop()
        self.channels.clear()
        self.relay.close()
        self.live_door.close()
