"""An item's gain toward its channel's loudness target."""

import pytest
from django.core.exceptions import ValidationError

from ingest.media import generate_tone
from ingest.services import asset_register_file
from playout.agent.fillers import FillerWriter, filler_playlist
from playout.agent.launcher import RunningChannel
from playout.cacher import MediaCache
from playout.loudness import MAX_BOOST_DB, PEAK_CEILING_DBTP, amplification, item_gain_db
from station.tests.factories import ChannelFactory, NodeFactory, PlaylistFactory
from station.tests.processes import wait_until


@pytest.mark.parametrize(("loudness", "peak", "gain"), [
    (-21.5, -21.5, -1.5),  # down to the target
    (-33.5, -33.5, 10.5),  # up to it
    (-30.0, -3.0, PEAK_CEILING_DBTP + 3.0),  # up only as far as its true peak allows: no clipping
    (-70.0, None, MAX_BOOST_DB),  # silence stays silence
    (None, None, 0.0),  # not measured yet: as it is
])
def test_an_item_is_brought_to_the_target_within_its_peak_and_the_boost_limit(loudness, peak, gain):
    assert item_gain_db(target_lufs=-23, loudness_lufs=loudness, true_peak_dbtp=peak) == pytest.approx(gain)


def test_the_engine_gets_a_linear_factor():
    assert (amplification(0), amplification(-6.0206), amplification(20)) == (1.0, 0.5, 10.0)


def test_a_channel_target_out_of_range_is_refused_with_its_reason(db):
    channel = ChannelFactory.build(loudness_target_lufs=-50)
    with pytest.raises(ValidationError) as refused:
        channel.validate_constraints()
    assert refused.value.error_dict["__all__"][0].code == "loudness_target_out_of_range"


@pytest.mark.django_db(transaction=True)  # the cacher's thread stores the measurement
def test_the_filler_files_play_at_the_channels_target_too_once_measured(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    channel = ChannelFactory(loudness_target_lufs=-30)
    channel.fallback_playlist = PlaylistFactory(studio=channel.studio, name="Filler")
    channel.save(update_fields=["fallback_playlist"])
    path = generate_tone(settings.MEDIA_ROOT / "library" / "filler.mp3", frequency=330, seconds=2)
    asset = asset_register_file(studio=channel.studio, path=path, title="Filler")
    cache = MediaCache(directory=tmp_path / "cache", shared_root=settings.MEDIA_ROOT, station_url="http://127.0.0.1:9",
                       node=NodeFactory())
    cache.want([(0.0, asset)])
    measured = wait_until(lambda: cache.loudness.get(asset.pk), timeout=10, message="the cacher to measure the filler")
    running = RunningChannel(channel=channel, engine=None, workdir=tmp_path / "engine", epoch=0, filler_assets=[asset])

    FillerWriter(cache).write([running])

    line = filler_playlist(running.workdir).read_text()
    factor = amplification(item_gain_db(target_lufs=-30, loudness_lufs=measured.integrated_lufs,
                                        true_peak_dbtp=measured.true_peak_dbtp))
    assert f"liq_amplify={factor}" in line and factor < 1  # a tone at about -21 LUFS, brought down to -30
