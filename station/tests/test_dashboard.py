"""The studio snapshot: what the dashboard paints first and after a resync."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from playout import services as playout_services
from playout.models import AsRunEntry, Channel, ScheduledItem
from station.dashboard import studio_snapshot
from station.models import Alert
from station.services import alert_raise
from station.tests.factories import (
    ChannelFactory, NodeFactory, RecorderFactory, ScheduleFactory, ShowInstanceFactory, StudioFactory,
)

pytestmark = pytest.mark.django_db


def test_a_channel_on_air_shows_its_item_what_comes_next_and_its_health():
    now = timezone.now()
    studio = StudioFactory()
    channel = ChannelFactory(studio=studio, node=NodeFactory(), status=Channel.Status.RUNNING, last_heartbeat_at=now)
    instance = ShowInstanceFactory(show__channel=channel, start_at=now - timedelta(minutes=1), end_at=now + timedelta(minutes=9))
    playing = ScheduledItem.objects.create(instance=instance, channel=channel, title="News", start_at=instance.start_at,
                                           end_at=now + timedelta(minutes=4))
    ScheduledItem.objects.create(instance=instance, channel=channel, title="Weather", start_at=playing.end_at,
                                 end_at=instance.end_at)
    playout_services.channel_on_air(
        channel_id=channel.pk, epoch=channel.lease_epoch, at=playing.start_at, title="News",
        result=AsRunEntry.Result.PLAYED, scheduled_item_id=playing.pk)

    snapshot = studio_snapshot(studio.pk, now=now)

    [shown] = snapshot["channels"]
    assert shown["healthy"] is True
    assert shown["on_air"]["title"] == "News"
    assert datetime.fromisoformat(shown["on_air"]["ends_at"]) == playing.end_at.replace(microsecond=playing.end_at.microsecond // 1000 * 1000)
    assert shown["next"]["title"] == "Weather"
    assert snapshot["as_run"][0]["title"] == "News"


def test_a_channel_not_probed_for_a_while_is_shown_unhealthy():
    now = timezone.now()
    channel = ChannelFactory(status=Channel.Status.RUNNING, last_heartbeat_at=now - timedelta(seconds=30))

    assert studio_snapshot(channel.studio_id, now=now)["channels"][0]["healthy"] is False


def test_the_timeline_marks_the_channels_uncovered_time_and_shows_recordings():
    now = timezone.now().replace(microsecond=0)
    studio = StudioFactory()
    channel = ChannelFactory(studio=studio)
    ShowInstanceFactory(show__channel=channel, start_at=now + timedelta(hours=1), end_at=now + timedelta(hours=2))
    window = ScheduleFactory(recorder=RecorderFactory(studio=studio), start_at=now + timedelta(hours=3),
                                     end_at=now + timedelta(hours=4))

    timeline = studio_snapshot(studio.pk, now=now)["timeline"]

    assert [(bar["kind"], bar["title"]) for bar in timeline["bars"]] == [("show", channel.instances.get().show.name),
                                                                          ("recording", window.name)]
    gaps = [(g["start_at"][11:16], g["end_at"][11:16]) for g in timeline["gaps"]]
    hour = lambda h: (now + timedelta(hours=h)).isoformat()[11:16]  # noqa: E731
    assert gaps == [(hour(0), hour(1)), (hour(2), hour(6))]
    assert timeline["conflicts"] == []


def test_only_open_alerts_and_only_this_studios_things_are_in_it():
    studio, other = StudioFactory(), StudioFactory()
    alert_raise(studio=studio, code="x", message="Look at me")
    alert_raise(studio=other, code="y", message="Not yours")
    Alert.objects.filter(studio=studio).update(acknowledged_at=timezone.now())
    alert_raise(studio=studio, code="z", message="Still open")
    ChannelFactory(studio=other)

    snapshot = studio_snapshot(studio.pk)

    assert [a["message"] for a in snapshot["alerts"]] == ["Still open"]
    assert snapshot["channels"] == []


def test_the_snapshot_costs_the_same_queries_for_few_or_many_channels_and_recorders():
    def queries_for(count):
        studio = StudioFactory()
        for _ in range(count):
            ChannelFactory(studio=studio)
            RecorderFactory(studio=studio)
        with CaptureQueriesContext(connection) as captured:
            studio_snapshot(studio.pk)
        return len(captured)

    assert queries_for(2) == queries_for(20)


def test_the_dashboard_page_is_for_members_of_its_studio_only(client, operator_a, studio_a, studio_b):
    assert client.get(f"/studios/{studio_a.pk}/dashboard/").status_code == 302  # to the login page

    client.force_login(operator_a)
    page = client.get(f"/studios/{studio_a.pk}/dashboard/")
    assert page.status_code == 200 and studio_a.name in page.content.decode()
    assert client.get(f"/studios/{studio_b.pk}/dashboard/").status_code == 404
    assert client.get(f"/studios/{studio_b.pk}/snapshot.json").status_code == 404
    assert client.get(f"/studios/{studio_a.pk}/snapshot.json").json()["studio"]["id"] == studio_a.pk
    assert client.get("/dashboard/").url == f"/studios/{studio_a.pk}/dashboard/"  # the only studio: straight there
