from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from playout.models import PlaylistItem, ScheduledItem, ShowInstance
from playout.timeline import timeline_refresh
from station.models import Alert
from station.recurrence import to_utc
from station.tests.factories import ChannelFactory, MediaAssetFactory, PlaylistFactory, ShowFactory, StudioFactory

pytestmark = pytest.mark.django_db


def _show_with_playlist(lengths, *, start, minutes=10, **show):
    studio = StudioFactory()
    channel = ChannelFactory(studio=studio)
    playlist = PlaylistFactory(studio=studio)
    for position, seconds in enumerate(lengths):
        PlaylistItem.objects.create(playlist=playlist, position=position,
                                    asset=MediaAssetFactory(studio=studio, duration_seconds=seconds))
    return ShowFactory(channel=channel, playlist=playlist, start_at=start, end_at=start + timedelta(minutes=minutes), **show)


def test_a_show_becomes_back_to_back_items_cut_at_its_end():
    start = timezone.now().replace(microsecond=0) + timedelta(minutes=5)
    show = _show_with_playlist([240, 240, 240], start=start)

    written = timeline_refresh(channel=show.channel, now=timezone.now())

    items = list(ScheduledItem.objects.order_by("start_at"))
    assert written == 3
    assert [(i.start_at - start).total_seconds() for i in items] == [0, 240, 480]
    assert items[-1].end_at == start + timedelta(minutes=10)  # cut at the show's end
    assert timeline_refresh(channel=show.channel, now=timezone.now()) == 0  # idempotent


def test_a_playlist_change_rebuilds_the_coming_items():
    start = timezone.now().replace(microsecond=0) + timedelta(minutes=5)
    show = _show_with_playlist([60, 60], start=start)
    timeline_refresh(channel=show.channel, now=timezone.now())
    PlaylistItem.objects.filter(playlist=show.playlist, position=0).delete()

    assert timeline_refresh(channel=show.channel, now=timezone.now()) == 1
    assert ScheduledItem.objects.get().start_at == start


def test_a_daily_show_is_placed_in_local_time_for_the_next_hours():
    zone = ZoneInfo("Europe/London")
    local_now = timezone.now().astimezone(zone)
    first = to_utc(local_now.replace(tzinfo=None, microsecond=0) - timedelta(days=3) + timedelta(hours=1), zone)
    show = _show_with_playlist([60], start=first, recurrence="daily")
    show.channel.studio.time_zone = "Europe/London"
    show.channel.studio.save()

    timeline_refresh(channel=show.channel, now=timezone.now())

    (instance,) = ShowInstance.objects.all()
    assert instance.start_at.astimezone(zone).time() == first.astimezone(zone).time()
    assert timezone.now() < instance.start_at < timezone.now() + timedelta(hours=6)


def test_a_recurring_show_that_would_overlap_another_raises_an_alert_instead():
    start = timezone.now().replace(microsecond=0) + timedelta(minutes=5)
    show = _show_with_playlist([60], start=start)
    ShowFactory(channel=show.channel, name="Clash", start_at=start + timedelta(minutes=5),
                end_at=start + timedelta(minutes=20))

    timeline_refresh(channel=show.channel, now=timezone.now())

    assert ShowInstance.objects.count() == 1
    assert Alert.objects.filter(code="show_overlap").exists()


@pytest.mark.django_db(transaction=True)  # each channel's timeline is built in its own transaction, as in the agent
def test_a_playlist_that_overruns_or_falls_short_of_its_show_alerts_the_desk():
    start = timezone.now().replace(microsecond=0) + timedelta(minutes=5)
    long_show = _show_with_playlist([400, 400], start=start, minutes=10)
    short_show = _show_with_playlist([60], start=start, minutes=10)

    timeline_refresh(channel=long_show.channel, now=timezone.now())
    timeline_refresh(channel=short_show.channel, now=timezone.now())

    assert "runs 200 s past the show's end" in Alert.objects.get(code="show_overrun").message
    assert "ends 540 s before the show does; the filler will play" in Alert.objects.get(code="show_gap").message
