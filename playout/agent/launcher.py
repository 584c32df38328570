"""Start a channel's Liquidsoap: its working directory, its script, its telnet port."""

import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from ingest.models import MediaAsset
from playout import services
from playout.agent.fillers import filler_playlist
from playout.cacher import MediaCache
from playout.liquidsoap import LiquidsoapEngine, LiveInput, output_clause, render_script
from playout.models import Channel, ScheduledItem
from playout.show_recordings import show_recordings_root
from playout.outputs import clean_output_settings, get_output
from station.errors import UserError
from station.services import alert_raise

logger = logging.getLogger(__name__)


@dataclass
class RunningChannel:
    channel: Channel
    engine: LiquidsoapEngine
    workdir: Path
    epoch: int  # the channel's lease epoch when this engine started: what the agent writes for it carries it
    running: bool = False
    # items tried: the end each was given while the engine holds it (None: unplayable, or off air by a skip)
    pushed: dict[int, datetime | None] = field(default_factory=dict)
    armed: ScheduledItem | None = None  # queued in the engine, waiting for its slot
    started_at_restart: int = 0  # the channel's restart count when this engine started
    applied_paused: bool = False
    applied_skip: datetime | None = None
    applied_dead_air: tuple[float, float] | None = None  # (seconds, threshold dBFS) the engine watches with
    filler_assets: list[MediaAsset] = field(default_factory=list)
    live_credential_id: int | None = None  # the presenter connected to its live input


def dead_air_limits(channel: Channel) -> tuple[float, float]:
    return channel.dead_air_seconds, channel.silence_threshold_dbfs


def telnet_port(channel: Channel) -> int:
    return settings.PLAYOUT_TELNET_BASE_PORT + channel.pk


class EngineLauncher:
    """Start channels' engines on this node; their on-air reports go to ``reports`` as (channel id, metadata, at,
    the channel's lease epoch), their live events to ``live_events`` as (channel id, event, detail, lease epoch). An
    engine with a live input asks ``live_admit_url(channel id)`` about each source client (playout.agent.live). The
    files its air recorders close go to ``air_recorded`` as (channel id, recorder, path)."""

    def __init__(self, *, node_dir: Path, cache: MediaCache, reports: queue.Queue, live_events: queue.Queue,
                 live_admit_url: Callable[[int], str], air_recorded: queue.Queue):
        self.node_dir = node_dir
        self.cache = cache
        self.reports = reports
        self.live_events = live_events
        self.air_recorded = air_recorded
        self.live_admit_url = live_admit_url

    def workdir(self, channel: Channel) -> Path:
        """Per node: two agents on one host never share an engine's script, filler list or leftovers."""
        return self.node_dir / "engines" / f"channel-{channel.pk}"

    def start(self, channel: Channel, *, node) -> RunningChannel | None:
        """Start the channel's engine; None if it can't start now.

        - the output's host does not resolve: alerted, and the next re-arm tries again;
        - the channel's settings are invalid: the channel is marked in error, and
          ``UnfitChannel`` is raised so the caller stops trying until someone restarts it.
        """
        workdir = self.workdir(channel)
        if channel.fallback_playlist_id:  # the engine watches it from the start; the cacher fills it
            workdir.mkdir(parents=True, exist_ok=True)
            filler_playlist(workdir).touch()
        try:
            script, writes = self.script(channel)
        except (UserError, ValidationError) as error:
            if isinstance(error, UserError) and error.code == "host_not_found":
                # The Icecast server's name did not resolve just now: the next re-arm tries again.
                logger.warning("channel %s: %s; starting it again soon", channel, error)
                alert_raise(studio=channel.studio_id, code="output_host_not_found", subject=channel.name,
                            message=_("%(channel)s can't reach its output yet: %(reason)s") % {"channel": channel,
                                                                                              "reason": error})
                return None
            # A bad row fails its own channel, with the reason, until someone fixes and restarts it.
            reason = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            logger.error("channel %s: cannot start its engine: %s", channel, reason)
            services.channel_mark_error(channel=channel, node=node, epoch=channel.lease_epoch,
                                        code="channel_settings_invalid",
                                        reason=_("%(channel)s cannot start: %(reason)s") % {"channel": channel, "reason": reason})
            raise UnfitChannel from error
        engine = LiquidsoapEngine(
            script=script, workdir=workdir, telnet_port=telnet_port(channel),
            on_air=lambda metadata, at, pk=channel.pk, epoch=channel.lease_epoch: self.reports.put(
                (pk, metadata, at, epoch)),
            on_live=lambda event, detail, pk=channel.pk, epoch=channel.lease_epoch: self.live_events.put(
                (pk, event, detail, epoch)),
            on_air_recorded=lambda recorder, path, pk=channel.pk: self.air_recorded.put((pk, recorder, path)),
            reads=tuple(path for path in (self.cache.directory, self.cache.shared_root) if path is not None),
            writes=(*writes, show_recordings_root()),
        )
        logger.info("channel %s: Liquidsoap %s started", channel, engine.pid)
        return RunningChannel(channel=channel, engine=engine, workdir=workdir, epoch=channel.lease_epoch,
                              applied_skip=channel.skip_requested_at, started_at_restart=channel.restart_count,
                              applied_dead_air=dead_air_limits(channel))

    def script(self, channel: Channel) -> tuple[str, tuple[Path, ...]]:
        """The engine's script from the channel's settings (checked again here: rows can be written around the
        model), and the directories it writes to besides its own."""
        output = clean_output_settings(channel.output_type, channel.output_settings)
        file_path = get_output(channel.output_type).file_path(self.node_dir, channel.pk, output)
        if file_path:
            file_path.parent.mkdir(parents=True, exist_ok=True)
        return render_script(
            output=output_clause(channel.output_type, output, "mksafe(air)", file_path=file_path),
            telnet_port=telnet_port(channel),
            filler_playlist=filler_playlist(self.workdir(channel)) if channel.fallback_playlist_id else None,
            dead_air_seconds=channel.dead_air_seconds, silence_threshold_dbfs=channel.silence_threshold_dbfs,
            live=LiveInput(port=channel.live_input_port, grace_seconds=channel.live_grace_seconds,
                           admit_url=self.live_admit_url(channel.pk)) if channel.live_input_port else None,
        ), (file_path.parent, file_path) if file_path else ()


class UnfitChannel(Exception):
    """The channel's own settings keep its engine from starting."""
