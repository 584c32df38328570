"""Each item at its channel's loudness target, by gain in the engine: the file itself is never re-encoded.

An item's (and a filler file's) gain is the target minus its measured integrated loudness (ingest.services.loudness),
lowered so that its true peak stays at PEAK_CEILING_DBTP at most (a gain that would clip is not
worth the loudness it buys; there is no limiter), and at most MAX_BOOST_DB up (silence measures
−70 LUFS: it stays silence). An item not measured yet plays as it is.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.media import Loudness
    from ingest.models import MediaAsset

DEFAULT_LOUDNESS_TARGET = -23.0  # LUFS: EBU R128 for broadcast
LOUDNESS_TARGETS = (-40.0, -5.0)  # what a channel may ask for
PEAK_CEILING_DBTP = -1.0
MAX_BOOST_DB = 20.0


def item_gain_db(*, target_lufs: float, loudness_lufs: float | None, true_peak_dbtp: float | None) -> float:
    """The gain, in dB, that plays an item measured at ``loudness_lufs`` (and ``true_peak_dbtp``) at ``target_lufs``."""
    if loudness_lufs is None:
        return 0.0
    gain = target_lufs - loudness_lufs
    if true_peak_dbtp is not None:
        gain = min(gain, PEAK_CEILING_DBTP - true_peak_dbtp)
    return min(gain, MAX_BOOST_DB)


def amplification(gain_db: float) -> float:
    """``gain_db`` as the linear factor Liquidsoap's ``amplify`` reads from an item's ``liq_amplify`` annotation."""
    return round(10 ** (gain_db / 20), 5)


def asset_amplification(asset: "MediaAsset", *, target_lufs: float, measured_here: "Loudness | None" = None) -> float:
    """The factor that plays ``asset`` at ``target_lufs``: from its stored measurement, or before one is stored,
    from ``measured_here`` (a node's cacher's, from its copy)."""
    loudness, peak = asset.loudness_lufs, asset.true_peak_dbtp
    if asset.loudness_measured_at is None and measured_here is not None:
        loudness, peak = measured_here.integrated_lufs, measured_here.true_peak_dbtp
    return amplification(item_gain_db(target_lufs=target_lufs, loudness_lufs=loudness, true_peak_dbtp=peak))
