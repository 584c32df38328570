"""An item's gain toward its channel's loudness target."""

import pytest
from django.core.exceptions import ValidationError

from playout.loudness import MAX_BOOST_DB, PEAK_CEILING_DBTP, amplification, item_gain_db
from station.tests.factories import ChannelFactory


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
