"""Keep each engine's filler playlist listing the filler files already on this node."""

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.models import MediaAsset
from playout.cacher import MediaCache
from playout.liquidsoap import quiet_annotation, request_uri
from playout.loudness import asset_amplification
from playout.models import Channel

if TYPE_CHECKING:  # the launcher imports this module
    from playout.agent.launcher import RunningChannel


def filler_assets(channel: Channel) -> list[MediaAsset]:
    """The ready assets of the channel's filler playlist, in its order."""
    if not channel.fallback_playlist_id:
        return []
    return [item.asset for item in channel.fallback_playlist.items.select_related("asset")
            if item.asset_id and item.asset.status == MediaAsset.Status.READY]


def filler_playlist(workdir: Path) -> Path:
    return workdir / "filler.m3u"


class FillerWriter:
    """Write the filler playlists again whenever the cache has taken in new files or measured one."""

    def __init__(self, cache: MediaCache):
        self.cache = cache
        self.arrivals_seen = 0

    def stale(self) -> bool:
        return self.cache.arrivals != self.arrivals_seen

    def write(self, channels: Iterable["RunningChannel"]) -> None:
        """Each engine watches its filler playlist: it lists the filler files already on this node."""
        self.arrivals_seen = self.cache.arrivals
        for running in channels:
            if not running.channel.fallback_playlist_id:
                continue
            present = [(asset, self.cache.path_for(asset.pk)) for asset in running.filler_assets]
            text = "".join(f"{request_uri(path, self._annotations(asset, running.channel))}\n" for asset, path in present if path)
            playlist = filler_playlist(running.workdir)
            playlist.parent.mkdir(parents=True, exist_ok=True)
            if not playlist.exists() or playlist.read_text() != text:
                playlist.write_text(text)

    def _annotations(self, asset: MediaAsset, channel: Channel) -> dict[str, int | float]:
        """A filler file plays at the channel's loudness target too, like the items (playout.loudness)."""
        return {"sk_asset": asset.pk, **quiet_annotation(asset), "liq_amplify": asset_amplification(
            asset, target_lufs=channel.loudness_target_lufs, measured_here=self.cache.loudness.get(asset.pk))}
