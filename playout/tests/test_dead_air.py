"""Dead air the engine reports: the as-run log, the alert and the channel's limits (playout.dead_air)."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from ingest.media import generate_tone
from ingest.models import MediaAsset
from ingest.services import asset_register_file
from playout import services
from playout.agent.fillers import FillerWriter, filler_playlist
from playout.agent.launcher import RunningChannel
from playout.cacher import MediaCache
from playout.models import AsRunEntry
from station.models import Alert
from station.tests.factories import ChannelFactory, NodeFactory, PlaylistFactory
from station.tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)  # the cacher's threads read the database


@pytest.mark.parametrize(("field", "value", "code"), [
    ("dead_air_seconds", 0.5, "dead_air_seconds_out_of_range"),
    ("dead_air_seconds", 301, "dead_air_seconds_out_of_range"),
    ("silence_threshold_dbfs", -10, "silence_threshold_out_of_range"),
    ("silence_threshold_dbfs", -120, "silence_threshold_out_of_range"),
])
def test_a_channels_dead_air_limits_out_of_range_are_refused_with_their_reason(field, value, code):
    with pytest.raises(ValidationError) as refused:
        ChannelFactory.build(**{field: value}).validate_constraints()
    assert refused.value.error_dict["__all__"][0].code == code


def test_dead_air_closes_what_was_on_air_when_it_fell_silent_and_alerts_the_desk():
    node = NodeFactory()
    channel = ChannelFactory(node=node)
    on_air_at = timezone.now() - timedelta(seconds=20)
    services.channel_on_air(channel_id=channel.pk, epoch=channel.lease_epoch, at=on_air_at, title="Feature",
                            result=AsRunEntry.Result.PLAYED, node=node)
    silent_from = on_air_at + timedelta(seconds=12)

    entry = services.channel_dead_air(channel_id=channel.pk, epoch=channel.lease_epoch, began_at=silent_from,
                                      silent_seconds=5.2, moved_on=True, title="Feature", node=node)

    played = AsRunEntry.objects.get(channel=channel, result=AsRunEntry.Result.PLAYED)
    assert played.ended_at == silent_from and played.duration_seconds == 12
    assert (entry.result, entry.started_at, entry.ended_at) == (AsRunEntry.Result.DEAD_AIR, silent_from, None)
    alert = Alert.objects.get(code="dead_air", subject=channel.name)
    assert alert.severity == Alert.Severity.CRITICAL
    assert "silent for 5.2 s" in alert.message and "Feature" in alert.message


def test_dead_air_with_no_filler_to_take_over_leaves_what_is_on_air_and_alerts_the_desk():
    node = NodeFactory()
    channel = ChannelFactory(node=node, fallback_playlist=None)
    on_air_at = timezone.now() - timedelta(seconds=20)
    services.channel_on_air(channel_id=channel.pk, epoch=channel.lease_epoch, at=on_air_at, title="Talk",
                            result=AsRunEntry.Result.PLAYED, node=node)

    assert services.channel_dead_air(channel_id=channel.pk, epoch=channel.lease_epoch, began_at=on_air_at,
                                     silent_seconds=5.0, moved_on=False, title="Talk", node=node) is None

    assert list(AsRunEntry.objects.filter(channel=channel).values_list("result", "ended_at")) == [
        (AsRunEntry.Result.PLAYED, None)]
    assert "no filler could take over: it plays on" in Alert.objects.get(code="dead_air").message


def test_filler_media_marked_quiet_on_purpose_tells_the_engine_so(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    channel = ChannelFactory(fallback_playlist=None)
    channel.fallback_playlist = PlaylistFactory(studio=channel.studio, name="Filler")
    channel.save(update_fields=["fallback_playlist"])
    assets = []
    for frequency, quiet in ((330, True), (440, False)):
        path = generate_tone(settings.MEDIA_ROOT / "library" / f"filler-{frequency}.mp3", frequency=frequency, seconds=1)
        assets.append(asset_register_file(studio=channel.studio, path=path, title=f"Filler {frequency}"))
        MediaAsset.objects.filter(pk=assets[-1].pk).update(intentionally_quiet=quiet)
    assets = list(MediaAsset.objects.filter(pk__in=[a.pk for a in assets]).order_by("pk"))
    cache = MediaCache(directory=tmp_path / "cache", shared_root=settings.MEDIA_ROOT, station_url="http://127.0.0.1:9",
                       node=NodeFactory())
    cache.want([(0.0, asset) for asset in assets])
    wait_until(lambda: all(cache.path_for(asset.pk) for asset in assets), timeout=10, message="the filler files")
    running = RunningChannel(channel=channel, engine=None, workdir=tmp_path / "engine", epoch=0, filler_assets=assets)

    FillerWriter(cache).write([running])

    quiet_line, other_line = filler_playlist(running.workdir).read_text().splitlines()
    assert "sk_quiet=1" in quiet_line and "sk_quiet=0" in other_line  # always said: a file's own tag can't say it
