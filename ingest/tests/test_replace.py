"""Media replaced by a download in an upcoming show: rundown lock, then timeline lock; playout is notified at commit."""

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone

from ingest import services as ingest_services
from ingest.models import Download
from playout import services
from playout.models import PlaylistItem, ScheduledItem
from playout.timeline import timeline_refresh
from station.locks import LockOrderError, timeline_lock
from station.notify import CHANNEL
from station.tests.factories import MediaAssetFactory, PlaylistFactory, ShowFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("loopback_allowed")]


@pytest.fixture
def upcoming_show(studio_a):
    """A show in ten minutes whose playlist plays one asset; its timeline already built."""
    asset = MediaAssetFactory(studio=studio_a, title="Old bulletin", duration_seconds=2)
    playlist = PlaylistFactory(studio=studio_a)
    PlaylistItem.objects.create(playlist=playlist, asset=asset)
    start = timezone.now() + timedelta(minutes=10)
    show = ShowFactory(channel__studio=studio_a, playlist=playlist, start_at=start, end_at=start + timedelta(minutes=5))
    timeline_refresh(channel=show.channel, now=timezone.now())
    assert ScheduledItem.objects.get(channel=show.channel).asset == asset
    return show, asset


def test_a_refetched_bulletin_replaces_the_old_one_in_the_upcoming_show_and_playout_hears_at_once(
        ingest_settings, server, tones, url_source, upcoming_show):
    show, old = upcoming_show
    source = url_source(server.add("bulletin.mp3", tones["two"]), remember=False)
    ingest_services.source_poll(source=source)
    first = ingest_services.download_run(download_id=Download.objects.get().pk)
    PlaylistItem.objects.filter(asset=old).update(asset=first.asset)  # staff put the downloaded bulletin in the show
    ScheduledItem.objects.filter(asset=old).update(asset=first.asset)
    server.add("bulletin.mp3", tones["three"])  # the next edition at the same address
    params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")

        ingest_services.source_poll(source=source)
        second = ingest_services.download_run(download_id=Download.objects.get().pk)
        heard = [n.payload for n in listener.notifies(timeout=1, stop_after=3)]

    assert second.asset != first.asset and second.asset.duration_seconds == pytest.approx(3, abs=0.1)
    assert PlaylistItem.objects.get().asset == second.asset
    item = ScheduledItem.objects.get(channel=show.channel)
    assert item.asset == second.asset
    assert f"playout_scheduleditem:{item.pk}" in heard


def test_replacing_waits_for_whoever_holds_the_channels_timeline(studio_a, upcoming_show):
    show, old = upcoming_show
    new = MediaAssetFactory(studio=studio_a)
    held = threading.Event()

    def hold_timeline():
        try:
            with transaction.atomic(), timeline_lock(show.channel_id):
                held.set()
                time.sleep(0.6)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_timeline)
    holder.start()
    held.wait(5)
    began = time.monotonic()
    services.asset_replace_in_upcoming_shows(old_id=old.pk, new=new, now=timezone.now())
    waited = time.monotonic() - began
    holder.join()

    assert waited > 0.4
    assert ScheduledItem.objects.get(channel=show.channel).asset == new


def test_replacing_inside_a_timeline_lock_is_refused_before_it_can_deadlock(studio_a, upcoming_show):
    show, old = upcoming_show
    with pytest.raises(LockOrderError), transaction.atomic(), timeline_lock(show.channel_id):
        services.asset_replace_in_upcoming_shows(old_id=old.pk, new=MediaAssetFactory(studio=studio_a), now=timezone.now())
