"""Turn the engines' on-air reports into the as-run log, once each has settled."""

import logging
import queue
import time
from datetime import UTC, datetime

from ingest.models import MediaAsset
from playout import services
from playout.agent.launcher import RunningChannel
from playout.liquidsoap import DEAD_AIR_KEY, LIVE_KEY, LIVE_LOST_KEY
from playout.models import AsRunEntry, LiveCredential, ScheduledItem
from station.fencing import Fenced

logger = logging.getLogger(__name__)
SILENCE_TITLE = "Silence"
PAUSED_TITLE = "Paused"
LIVE_TITLE = "Live"  # a live segment whose credential is gone
LIVE_LOST_TITLE = "live source lost"
SETTLE_SECONDS = 0.1


class AsRunLog:
    """Collect on-air reports (channel id, metadata, epoch seconds, lease epoch) from the engines' threads; log them."""

    def __init__(self):
        self.reports: queue.Queue = queue.Queue()
        self.pending: list[tuple] = []

    def settled(self) -> list[tuple]:
        """Take the reports no later one replaced within SETTLE_SECONDS (a skip, a filler's quick change)."""
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
        return settled

    def log(self, channels: dict[int, RunningChannel], upcoming: list[ScheduledItem], *, node) -> set[int]:
        """Write the settled reports to the as-run log, as played, live, paused, filler or dead air; return the channels whose writes
        were refused (another node holds them now)."""
        fenced = set()
        for channel_id, metadata, at, epoch in self.settled():
            if channel_id in fenced:
                continue
            try:
                self._write(channel_id, metadata, at, channels, upcoming, node=node, epoch=epoch)
            except Fenced:
                fenced.add(channel_id)
        return fenced

    def _write(self, channel_id: int, metadata: dict, at: float, channels: dict[int, RunningChannel],
               upcoming: list[ScheduledItem], *, node, epoch: int) -> None:
        running = channels.get(channel_id)
        if running and running.armed and str(running.armed.pk) == str(metadata.get("sk_item")):
            running.armed = None
        moment = datetime.fromtimestamp(at, tz=UTC)
        item_id, asset_id = _int(metadata.get("sk_item")), _int(metadata.get("sk_asset"))
        if DEAD_AIR_KEY in metadata:
            services.channel_dead_air(
                channel_id=channel_id, epoch=epoch, began_at=moment, silent_seconds=metadata[DEAD_AIR_KEY]["seconds"],
                moved_on=metadata[DEAD_AIR_KEY]["moved_on"], title=title(item_id, asset_id, metadata, channels, upcoming),
                asset_id=asset_id, scheduled_item_id=item_id, node=node)
        elif LIVE_KEY in metadata or LIVE_LOST_KEY in metadata:
            lost = LIVE_LOST_KEY in metadata
            credential = (LiveCredential.objects.select_related("show")
                          .filter(pk=_int(metadata.get(LIVE_LOST_KEY if lost else LIVE_KEY))).first())
            show = credential.show.name if credential else LIVE_TITLE
            entry = services.channel_on_air(
                channel_id=channel_id, epoch=epoch, at=moment, title=f"{show}: {LIVE_LOST_TITLE}" if lost else show,
                result=AsRunEntry.Result.LIVE_LOST if lost else AsRunEntry.Result.LIVE, live_credential=credential,
                node=node)
            if not lost:
                _announce(running, entry.title)
        elif item_id:
            entry = services.channel_on_air(
                channel_id=channel_id, epoch=epoch, at=moment,
                title=title(item_id, asset_id, metadata, channels, upcoming),
                result=AsRunEntry.Result.PLAYED, asset_id=asset_id, scheduled_item_id=item_id, node=node,
            )
            _announce(running, entry.title)
        elif running and running.applied_paused and not metadata.get("filename"):
            services.channel_on_air(channel_id=channel_id, epoch=epoch, at=moment, title=PAUSED_TITLE,
                                    result=AsRunEntry.Result.PAUSED, node=node)
        else:
            entry = services.channel_on_air(channel_id=channel_id, epoch=epoch, at=moment,
                                            title=title(None, asset_id, metadata, channels, upcoming),
                                            asset_id=asset_id, result=AsRunEntry.Result.FALLBACK, node=node)
            if entry.asset_id:
                _announce(running, entry.title)


def _announce(running: RunningChannel | None, on_air: str) -> None:
    """The engine's outputs carry the title listeners see (ICY metadata, tags): titles reach the engine only as
    this value, never in a request URI."""
    if running is None:
        return
    try:
        running.engine.gateway.set_title(on_air)
    except OSError as error:
        logger.warning("channel %s: the engine did not take the title on air: %s", running.channel, error)


def title(item_id: int | None, asset_id: int | None, metadata: dict,
          channels: dict[int, RunningChannel], upcoming: list[ScheduledItem]) -> str:
    """What the as-run log calls an on-air change: the item's or the asset's title, from the database.

    Titles never travel through the engine's requests (see playout.liquidsoap), only the ids do; the outputs get
    the title afterwards, as a telnet value (``_announce``).
    """
    if item_id:
        found = next((i.title for i in upcoming if i.pk == item_id), None)
        found = found or ScheduledItem.objects.filter(pk=item_id).values_list("title", flat=True).first()
        if found:
            return found
    if asset_id:
        found = next((a.title for r in channels.values() for a in r.filler_assets if a.pk == asset_id), None)
        found = found or MediaAsset.objects.filter(pk=asset_id).values_list("title", flat=True).first()
        if found:
            return found
    return str(metadata.get("title") or SILENCE_TITLE)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
