"""The node agent's channel supervisor: one Liquidsoap per channel placed on this node.

It starts each engine with the channel's filler, marks the channel running once
the engine answers, pushes scheduled items at their slot, and turns the
engine's on-air reports into the as-run log.
"""

import contextlib
import logging
import queue
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.db.models import Q
from django.utils.translation import gettext as _

from ingest.models import MediaAsset
from playout import services
from playout.liquidsoap import FRAME_SECONDS, LiquidsoapEngine, output_clause, render_script, request_uri
from playout.models import AsRunEntry, Channel, ScheduledItem
from playout.cacher import HORIZON as CACHE_HORIZON
from playout.cacher import MediaCache
from playout.outputs import OUTPUTS, clean_output_settings, get_output
from playout.relay import WebstreamRelay
from playout.timeline import timeline_refresh
from station.errors import UserError
from station.models import Alert
from station.services import alert_raise

logger = logging.getLogger(__name__)
DISPATCH_HORIZON = timedelta(minutes=5)
SILENCE_TITLE = "Silence"
PAUSED_TITLE = "Paused"
LATE_START_SECONDS = 0.5  # later than this, an item's cue point is advanced by its lateness
PREPARE_SECONDS = 2.0  # items are queued this early, so the engine has them resolved at their slot
# The gate reads the wall clock, and a frame can be computed a few ms after its due time: opened
# this much later, it never lets an item in on a frame that is due before the slot.
PACING_JITTER_SECONDS = 0.005
SETTLE_SECONDS = 0.1
WEBSTREAM_CONNECT_GRACE = timedelta(seconds=3)
# An engine that dies is restarted here at once; one that keeps dying is left for the health job
# to move to another node (the host may be what is wrong).
CRASHES_BEFORE_GIVING_UP, CRASH_WINDOW_SECONDS = 3, 60
WEBSTREAM_CHECK_AHEAD = timedelta(minutes=10)  # an answer further ahead says little about the slot
FAULT_ALERT_SECONDS = 60  # a channel whose handling keeps failing is reported once a minute, not every step


@dataclass
class RunningChannel:
    channel: Channel
    engine: LiquidsoapEngine
    running: bool = False
    pushed: set[int] = field(default_factory=set)
    armed: ScheduledItem | None = None  # queued in the engine, waiting for its slot
    started_at_restart: int = 0  # the channel's restart count when this engine started
    applied_paused: bool = False
    applied_skip: datetime | None = None
    filler_assets: list[MediaAsset] = field(default_factory=list)


class ChannelSupervisor:
    def __init__(self, *, node):
        self.node = node
        self.channels: dict[int, RunningChannel] = {}
        self.upcoming: list[ScheduledItem] = []
        self.reports: queue.Queue = queue.Queue()
        self.pending: list[tuple] = []
        self.unplayable: set[int] = set()
        self.cache_arrivals_seen = 0
        self.crashes: dict[int, list[float]] = {}  # channel id → when its engine died lately
        self.given_up: dict[int, int] = {}  # channel id → its restart count when this node gave up on it
        self.faults_reported: dict[int, float] = {}  # channel id → when its last fault was reported
        self.relay = WebstreamRelay()
        self.node_dir = Path(settings.PLAYOUT_CACHE_ROOT) / node.name
        self.cache = MediaCache(
            directory=self.node_dir / "media",
            shared_root=Path(settings.MEDIA_ROOT) if settings.PLAYOUT_SHARED_MEDIA else None,
            station_url=settings.STATION_URL, node=node,
        )

    # -- planning -----------------------------------------------------------------------------

    def rearm(self, now: datetime) -> None:
        wanted = {
            channel.pk: channel
            for channel in Channel.objects.filter(
                node=self.node, status__in=[Channel.Status.STARTING, Channel.Status.RUNNING]
            ).exclude(output_type__in=[name for name, output in OUTPUTS.items() if not output.drives_engine])
            .select_related("fallback_playlist")
        }
        self.given_up = {pk: count for pk, count in self.given_up.items()
                         if pk in wanted and wanted[pk].restart_count == count}  # moved, or restarted on purpose
        for pk in self.given_up:
            wanted.pop(pk)
        for pk in list(self.channels):
            if pk not in wanted:
                logger.info("channel %s: no longer on this node; stopping its engine", self.channels[pk].channel)
                self.channels.pop(pk).engine.stop()
        for pk, channel in wanted.items():
            current = self.channels.get(pk)
            if current:
                current.channel = channel  # operators' pause and skip arrive with it
            if current and channel.status == Channel.Status.STARTING and channel.restart_count > current.started_at_restart:
                logger.info("channel %s: restart asked; restarting its engine", channel)
                self.channels.pop(pk).engine.stop()
                current = None
            if current is None:
                with self._contained(channel, _("start its engine")):
                    self._start(channel)
        for running in self.channels.values():
            with self._contained(running.channel, _("build its timeline")):
                timeline_refresh(channel=running.channel, now=now)
        coming = list(
            ScheduledItem.objects.filter(
                channel_id__in=list(self.channels), start_at__lte=now + CACHE_HORIZON, end_at__gt=now
            ).filter(Q(asset__isnull=False) | ~Q(webstream_url="")).select_related("asset", "channel").order_by("start_at")
        )
        for running in self.channels.values():
            with self._contained(running.channel, _("read its filler playlist")):
                running.filler_assets = self._filler_assets(running.channel)
        self.cache.want([(0.0, asset) for running in self.channels.values() for asset in running.filler_assets]
                        + [(item.start_at.timestamp(), item.asset) for item in coming if item.asset_id])  # fillers first
        self.cache.try_webstreams([(item.start_at.timestamp(), item.webstream_url) for item in coming
                                   if item.webstream_url and item.start_at <= now + WEBSTREAM_CHECK_AHEAD])
        self.unplayable = self.cache.unplayable(coming)
        self._write_fillers()
        self.upcoming = list(
            ScheduledItem.objects.filter(
                channel_id__in=list(self.channels), start_at__lte=now + DISPATCH_HORIZON, end_at__gt=now
            ).select_related("asset").order_by("start_at")
        )

    def _workdir(self, channel: Channel) -> Path:
        """Per node: two agents on one host never share an engine's script, filler list or leftovers."""
        return self.node_dir / "engines" / f"channel-{channel.pk}"

    def _start(self, channel: Channel) -> None:
        workdir = self._workdir(channel)
        if channel.fallback_playlist_id:  # the engine watches it from the start; the cacher fills it
            workdir.mkdir(parents=True, exist_ok=True)
            self._filler_playlist(channel).touch()
        try:
            script, writes = self._script(channel)
        except (UserError, ValidationError) as error:
            if isinstance(error, UserError) and error.code == "host_not_found":
                # The Icecast server's name did not resolve just now: the next re-arm tries again.
                logger.warning("channel %s: %s; starting it again soon", channel, error)
                alert_raise(studio=channel.studio_id, code="output_host_not_found", subject=channel.name,
                            message=_("%(channel)s can't reach its output yet: %(reason)s") % {"channel": channel,
                                                                                              "reason": error})
                return
            # A bad row fails its own channel, with the reason, until someone fixes and restarts it.
            reason = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            logger.error("channel %s: cannot start its engine: %s", channel, reason)
            services.channel_mark_error(channel=channel, node=self.node, code="channel_settings_invalid",
                                        reason=_("%(channel)s cannot start: %(reason)s") % {"channel": channel, "reason": reason})
            self.given_up[channel.pk] = channel.restart_count
            return
        engine = LiquidsoapEngine(
            script=script, workdir=workdir, telnet_port=self._telnet_port(channel),
            on_air=lambda metadata, at, pk=channel.pk: self.reports.put((pk, metadata, at)),
            reads=tuple(path for path in (self.cache.directory, self.cache.shared_root) if path is not None), writes=writes,
        )
        self.channels[channel.pk] = RunningChannel(channel=channel, engine=engine, applied_skip=channel.skip_requested_at,
                                                   started_at_restart=channel.restart_count)
        logger.info("channel %s: Liquidsoap %s started", channel, engine.process.pid)

    def _script(self, channel: Channel) -> tuple[str, tuple[Path, ...]]:
        """The engine's script from the channel's settings (checked again here: rows can be written around the
        model), and the directories it writes to besides its own."""
        output = clean_output_settings(channel.output_type, channel.output_settings)
        file_path = get_output(channel.output_type).file_path(self.node_dir, channel.pk, output)
        if file_path:
            file_path.parent.mkdir(parents=True, exist_ok=True)
        return render_script(
            output=output_clause(channel.output_type, output, "mksafe(air)", file_path=file_path),
            telnet_port=self._telnet_port(channel),
            filler_playlist=self._filler_playlist(channel) if channel.fallback_playlist_id else None,
        ), (file_path.parent, file_path) if file_path else ()

    @contextlib.contextmanager
    def _contained(self, channel: Channel, doing: str):
        """What goes wrong for one channel stays with it: logged, reported to its studio, the others carry on."""
        try:
            yield
        except DatabaseError:
            raise  # the database, not the channel: the agent reconnects
        except Exception as error:
            logger.exception("channel %s: could not %s", channel, doing)
            if time.monotonic() - self.faults_reported.get(channel.pk, -FAULT_ALERT_SECONDS) >= FAULT_ALERT_SECONDS:
                self.faults_reported[channel.pk] = time.monotonic()
                alert_raise(studio=channel.studio_id, code="channel_agent_error", subject=channel.name,
                            severity=Alert.Severity.CRITICAL,
                            message=_("The agent on %(node)s could not %(doing)s for %(channel)s: %(reason)s")
                            % {"node": self.node, "doing": doing, "channel": channel, "reason": error})

    @staticmethod
    def _telnet_port(channel: Channel) -> int:
        return settings.PLAYOUT_TELNET_BASE_PORT + channel.pk

    @staticmethod
    def _filler_assets(channel: Channel) -> list[MediaAsset]:
        if not channel.fallback_playlist_id:
            return []
        return [item.asset for item in channel.fallback_playlist.items.select_related("asset")
                if item.asset_id and item.asset.status == MediaAsset.Status.READY]

    def _filler_playlist(self, channel: Channel) -> Path:
        return self._workdir(channel) / "filler.m3u"

    def _write_fillers(self) -> None:
        """Each engine watches its filler playlist: it lists the filler files already on this node."""
        self.cache_arrivals_seen = self.cache.arrivals
        for running in self.channels.values():
            if not running.channel.fallback_playlist_id:
                continue
            present = [(asset, self.cache.path_for(asset.pk)) for asset in running.filler_assets]
            text = "".join(f"{request_uri(path, {'sk_asset': asset.pk})}\n" for asset, path in present if path)
            playlist = self._filler_playlist(running.channel)
            playlist.parent.mkdir(parents=True, exist_ok=True)
            if not playlist.exists() or playlist.read_text() != text:
                playlist.write_text(text)

    def next_deadline(self) -> float | None:
        if not self.channels:
            return None
        pushed = set().union(*(running.pushed for running in self.channels.values()))
        moments = [item.start_at.timestamp() - PREPARE_SECONDS for item in self.upcoming if item.pk not in pushed]
        moments.append(time.time() + 0.05)  # on-air reports are logged promptly
        return min(moments)

    # -- acting -------------------------------------------------------------------------------

    def step(self, now: datetime) -> None:
        for running in list(self.channels.values()):
            with self._contained(running.channel, _("watch its engine")):
                if not running.engine.alive():
                    self._engine_died(running)
                    continue
                if not running.running and running.engine.gateway.alive():
                    running.running = True
                    if not services.channel_mark_running(channel=running.channel, node=self.node, now=now):
                        logger.warning("channel %s: engine up, but the channel is no longer starting here", running.channel)
                if running.running:
                    self._apply_operator_actions(running)
        if self.cache.arrivals != self.cache_arrivals_seen:
            self._write_fillers()
        self._dispatch(now)
        self._log_reports()

    def _engine_died(self, running: RunningChannel) -> None:
        channel = running.channel
        self.channels.pop(channel.pk)
        recent = [t for t in self.crashes.get(channel.pk, []) if time.time() - t < CRASH_WINDOW_SECONDS] + [time.time()]
        self.crashes[channel.pk] = recent
        last_words = " | ".join(running.engine.last_lines(3))
        if len(recent) >= CRASHES_BEFORE_GIVING_UP:
            logger.error("channel %s: Liquidsoap died %s times in %s s (%s); leaving it to another node",
                         channel, len(recent), CRASH_WINDOW_SECONDS, last_words)
            self.given_up[channel.pk] = channel.restart_count
            self.crashes.pop(channel.pk)
            return
        logger.warning("channel %s: Liquidsoap exited (%s); restarting", channel, last_words)
        self._start(channel)

    def probe(self, now: datetime) -> None:
        """Ask each engine over telnet whether it is up; report the ones that answer (the health job reads it).

        The agent calls this from its prober thread (station.agent), so engines that play on while
        the agent's loop is busy keep reporting healthy and are not failed over.
        """
        healthy = [pk for pk, running in list(self.channels.items()) if running.running and running.engine.gateway.alive()]
        if healthy:
            services.channel_report_healthy(channel_ids=healthy, node=self.node, now=now)

    def _apply_operator_actions(self, running: RunningChannel) -> None:
        channel = running.channel
        try:
            if channel.paused != running.applied_paused:
                running.engine.gateway.set_paused(channel.paused)
                running.applied_paused = channel.paused
            if channel.skip_requested_at and channel.skip_requested_at != running.applied_skip:
                services.as_run_mark_skipped(channel_id=channel.pk)
                running.engine.gateway.skip()
                running.applied_skip = channel.skip_requested_at
        except OSError as error:
            logger.error("channel %s: engine did not take the operator's action: %s", channel, error)

    def _dispatch(self, now: datetime) -> None:
        """Queue each channel's next item ahead of its slot and tell the engine when to let it on air."""
        for running in self.channels.values():
            if running.running:
                with self._contained(running.channel, _("queue its next item")):
                    self._dispatch_channel(running, now)

    def _dispatch_channel(self, running: RunningChannel, now: datetime) -> None:
        if running.armed is not None and running.armed.webstream_url and not running.engine.webstream_connected \
                and now > min(running.armed.start_at + WEBSTREAM_CONNECT_GRACE, running.armed.end_at):
            self._webstream_unreachable(running)
            running.armed = None  # the filler covers it; what follows is armed on time
        if running.armed is not None and running.armed.end_at <= now:
            running.armed = None  # it never went on air (removed from the timeline); move on
        if running.armed is not None:
            return
        item = next((i for i in self.upcoming if i.channel_id == running.channel.pk and i.pk not in running.pushed), None)
        if item is None or item.start_at - timedelta(seconds=PREPARE_SECONDS) > now:
            return
        running.pushed.add(item.pk)
        if item.pk in self.unplayable:
            return  # the filler covers it; the cacher already alerted
        if item.webstream_url:
            self._arm_webstream(running, item, now)
        elif item.asset_id:
            self._arm(running, item, now)

    @staticmethod
    def _gate_opens_at(item: ScheduledItem, now: datetime) -> tuple[float, float]:
        """When the engine's gate should open for the item, and by how much it starts late (0 if on time)."""
        lateness = (now - item.start_at).total_seconds()
        if lateness > LATE_START_SECONDS:  # agent restart, late change: start now, further in
            return time.time(), lateness
        # The switch lets the item in on the frame after the one that finds the gate open.
        return item.start_at.timestamp() - FRAME_SECONDS + PACING_JITTER_SECONDS, 0.0

    def _arm_webstream(self, running: RunningChannel, item: ScheduledItem, now: datetime) -> None:
        opens_at, _lateness = self._gate_opens_at(item, now)
        try:
            running.engine.gateway.arm_webstream(item_id=item.pk, start=opens_at, end=item.end_at.timestamp(),
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
        opens_at, advance = self._gate_opens_at(item, now)
        cue_in = item.cue_in_seconds + advance
        cue_out = item.cue_in_seconds + (item.end_at - item.start_at).total_seconds()
        annotations = {"sk_item": item.pk, "sk_asset": item.asset_id,
                       "liq_cue_in": round(cue_in, 3), "liq_cue_out": round(cue_out, 3)}
        path = self.cache.path_for(item.asset_id)
        if path is None:
            self.cache.unplayable([item], now_arming={item.pk})  # alerts; the filler covers it
            return
        try:
            running.engine.gateway.push(path, annotations)
            running.engine.gateway.set_next_at(opens_at)
            running.armed = item
        except UserError as error:  # a file name the engine can't be handed: the filler covers it
            alert_raise(studio=running.channel.studio_id, code="media_missing", subject=item.title,
                        severity=Alert.Severity.CRITICAL,
                        message=_("%(title)s on %(channel)s can't be played: %(reason)s The filler covers it.")
                        % {"title": item.title, "channel": running.channel, "reason": error})
        except OSError as error:
            logger.error("channel %s: could not queue %s: %s", running.channel, item, error)

    def _log_reports(self) -> None:
        while True:
            try:
                self.pending.append(self.reports.get_nowait())
            except queue.Empty:
                break
        settled, waiting = [], []
        for index, report in enumerate(self.pending):
            following = next((r for r in self.pending[index + 1:] if r[0] == report[0]), None)
            if following is not None:
                if following[2] - report[2] >= SETTLE_SECONDS:
                    settled.append(report)
            elif time.time() - report[2] >= SETTLE_SECONDS:
                settled.append(report)
            else:
                waiting.append(report)
        self.pending = waiting
        for channel_id, metadata, at in settled:
            running = self.channels.get(channel_id)
            if running and running.armed and str(running.armed.pk) == str(metadata.get("sk_item")):
                running.armed = None
            moment = datetime.fromtimestamp(at, tz=UTC)
            item_id, asset_id = _int(metadata.get("sk_item")), _int(metadata.get("sk_asset"))
            if item_id:
                services.channel_on_air(
                    channel_id=channel_id, at=moment, title=self._title(item_id, asset_id, metadata),
                    result=AsRunEntry.Result.PLAYED, asset_id=asset_id, scheduled_item_id=item_id, node=self.node,
                )
            elif running and running.applied_paused and not metadata.get("filename"):
                services.channel_on_air(channel_id=channel_id, at=moment, title=PAUSED_TITLE,
                                        result=AsRunEntry.Result.PAUSED, node=self.node)
            else:
                services.channel_on_air(channel_id=channel_id, at=moment, title=self._title(None, asset_id, metadata),
                                        asset_id=asset_id, result=AsRunEntry.Result.FALLBACK, node=self.node)

    def _title(self, item_id: int | None, asset_id: int | None, metadata: dict) -> str:
        """What the as-run log calls an on-air change: the item's or the asset's title, from the database.

        Titles never travel through the engine (see playout.liquidsoap), only the ids do.
        """
        if item_id:
            title = next((i.title for i in self.upcoming if i.pk == item_id), None)
            title = title or ScheduledItem.objects.filter(pk=item_id).values_list("title", flat=True).first()
            if title:
                return title
        if asset_id:
            title = next((a.title for r in self.channels.values() for a in r.filler_assets if a.pk == asset_id), None)
            title = title or MediaAsset.objects.filter(pk=asset_id).values_list("title", flat=True).first()
            if title:
                return title
        return str(metadata.get("title") or SILENCE_TITLE)

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


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
