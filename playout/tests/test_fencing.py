"""Once a channel moved to another node, or its node's agent was replaced, the agent before writes nothing more."""

from datetime import timedelta

import pytest
from django.utils import timezone

from playout import services
from playout.models import AsRunEntry, Channel
from station import services as station_services
from station.fencing import Fenced
from station.models import Alert
from station.tests.factories import ChannelFactory, NodeFactory

pytestmark = pytest.mark.django_db
AGENT = {"hostname": "media-1", "version": "1"}


def test_an_agent_whose_channel_failed_over_has_every_write_for_it_refused():
    now = timezone.now()
    first = NodeFactory(name="host-1", last_heartbeat_at=now - timedelta(minutes=1))
    second = NodeFactory(name="host-2", last_heartbeat_at=now)
    channel = ChannelFactory(node=first, status=Channel.Status.RUNNING, last_heartbeat_at=now - timedelta(minutes=1))
    stale = channel.lease_epoch
    assert services.channel_fail_over(channel=channel, now=now)
    alerts = Alert.objects.count()

    for write in (
        lambda: services.channel_on_air(channel_id=channel.pk, epoch=stale, at=now, title="Tone",
                                        result=AsRunEntry.Result.PLAYED, node=first),
        lambda: services.channel_mark_running(channel=channel, node=first, epoch=stale, now=now),
        lambda: services.channel_mark_error(channel=channel, node=first, epoch=stale, reason="bad", code="bad"),
        lambda: services.channel_engine_failing(channel=channel, node=first, epoch=stale, retry_in=10, reason="crash"),
        lambda: services.as_run_mark_skipped(channel_id=channel.pk, epoch=stale),
    ):
        with pytest.raises(Fenced):
            write()
    assert services.channel_report_healthy(leases={channel.pk: stale}, node=first, now=now) == {channel.pk}

    moved = Channel.objects.get(pk=channel.pk)
    assert (moved.node, moved.status) == (second, Channel.Status.STARTING)
    assert moved.last_heartbeat_at == channel.last_heartbeat_at  # host-1's report of a healthy engine was refused
    assert not AsRunEntry.objects.exists() and Alert.objects.count() == alerts
    assert moved.lease_epoch > stale  # the node that holds it now writes with its epoch
    services.channel_on_air(channel_id=channel.pk, epoch=moved.lease_epoch, at=now, title="Tone",
                            result=AsRunEntry.Result.PLAYED, node=second)
    assert AsRunEntry.objects.get().node == second


def test_a_new_agent_process_for_a_node_fences_the_old_one_out_of_the_node_and_its_channels():
    old = station_services.node_register(name="host-1", **AGENT)
    channel = ChannelFactory(node=old, status=Channel.Status.RUNNING)
    stale = Channel.objects.get(pk=channel.pk).lease_epoch

    new = station_services.node_register(name="host-1", **AGENT)  # the old process froze; a new one started

    assert new.pk == old.pk and new.agent_epoch == old.agent_epoch + 1
    with pytest.raises(Fenced):
        station_services.node_heartbeat(node=old, **AGENT)
    with pytest.raises(Fenced):
        services.channel_on_air(channel_id=channel.pk, epoch=stale, at=timezone.now(), title="Tone",
                                result=AsRunEntry.Result.PLAYED, node=old)
    assert station_services.node_heartbeat(node=new, **AGENT).is_online()
    assert services.channel_report_healthy(leases={channel.pk: Channel.objects.get(pk=channel.pk).lease_epoch},
                                           node=new, now=timezone.now()) == set()


@pytest.mark.parametrize("on_air, logged", [(AsRunEntry.Result.PLAYED, AsRunEntry.Result.SKIPPED),
                                            (AsRunEntry.Result.FALLBACK, AsRunEntry.Result.SKIPPED),
                                            (AsRunEntry.Result.LIVE, AsRunEntry.Result.LIVE)])
def test_a_skip_is_logged_on_what_the_schedule_plays_and_a_presenter_on_air_keeps_their_row(on_air, logged):
    channel = ChannelFactory(status=Channel.Status.RUNNING)
    services.channel_on_air(channel_id=channel.pk, epoch=channel.lease_epoch, at=timezone.now(), title="On air",
                            result=on_air)

    services.as_run_mark_skipped(channel_id=channel.pk, epoch=channel.lease_epoch)

    assert AsRunEntry.objects.get(channel=channel).result == logged


@pytest.mark.parametrize("second_node", [True, False], ids=["failed over", "no node to take it"])
def test_a_channel_whose_engine_went_silent_ends_its_as_run_row_when_it_was_last_heard(second_node):
    now = timezone.now()
    first = NodeFactory(name="host-1", last_heartbeat_at=now - timedelta(hours=2))
    if second_node:
        NodeFactory(name="host-2", last_heartbeat_at=now)
    channel = ChannelFactory(node=first, status=Channel.Status.RUNNING, last_heartbeat_at=now - timedelta(hours=2))
    services.channel_on_air(channel_id=channel.pk, epoch=channel.lease_epoch, at=now - timedelta(hours=3),
                            title="Song", result=AsRunEntry.Result.PLAYED, node=first)

    assert services.channel_fail_over(channel=channel, now=now) == second_node

    row = AsRunEntry.objects.get(channel=channel)
    assert (row.ended_at, row.duration_seconds) == (now - timedelta(hours=2), 3600)
    assert Channel.objects.get(pk=channel.pk).status == (Channel.Status.STARTING if second_node else Channel.Status.ERROR)
