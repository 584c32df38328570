from datetime import timedelta

import pytest
from django.utils import timezone

from playout import services
from playout.models import Channel
from station.fencing import Fenced
from station.models import Alert
from station.tests.factories import ChannelFactory, NodeFactory

pytestmark = pytest.mark.django_db


def _dead_channel(**fields):
    stale = timezone.now() - timedelta(seconds=30)
    return ChannelFactory(status=Channel.Status.RUNNING, last_heartbeat_at=stale, **fields)


def test_a_hardware_channel_only_alerts_and_stays_on_its_host():
    host = NodeFactory(capabilities=["playout", "decklink"], last_heartbeat_at=timezone.now())
    NodeFactory(name="spare", capabilities=["playout", "decklink"], last_heartbeat_at=timezone.now())
    channel = _dead_channel(node=host, output_type=Channel.Output.DECKLINK)

    services.channels_check_health(now=timezone.now())

    channel.refresh_from_db()
    assert channel.status == Channel.Status.ERROR and channel.node == host
    assert "hardware output stays on its host" in channel.error_message
    assert Alert.objects.get(code="channel_hardware_down").severity == Alert.Severity.CRITICAL


def test_a_network_channel_moves_to_the_least_busy_healthy_node_that_can_play_out():
    now = timezone.now()
    old = NodeFactory(name="old", last_heartbeat_at=now - timedelta(minutes=1))
    NodeFactory(name="recorder-only", capabilities=["record"], last_heartbeat_at=now)
    busy = NodeFactory(name="busy", last_heartbeat_at=now)
    ChannelFactory(node=busy)
    idle = NodeFactory(name="idle", last_heartbeat_at=now)
    channel = _dead_channel(node=old)

    assert services.channels_check_health(now=now) == {"failed_over": 1, "alerted": 0}

    channel.refresh_from_db()
    assert (channel.node, channel.status, channel.restart_count) == (idle, Channel.Status.STARTING, 1)


def test_with_no_healthy_node_the_channel_is_in_error_with_the_reason():
    channel = _dead_channel(node=NodeFactory(name="lonely"))
    services.channels_check_health(now=timezone.now())
    channel.refresh_from_db()
    assert channel.status == Channel.Status.ERROR
    assert "no healthy node can take it over" in channel.error_message


def test_a_fresh_channel_has_a_grace_period():
    channel = ChannelFactory(status=Channel.Status.STARTING, node=NodeFactory())
    services.channels_check_health(now=timezone.now())
    channel.refresh_from_db()
    assert channel.status == Channel.Status.STARTING


def test_a_lone_node_tries_a_crashing_channel_again_after_its_rest_and_its_alerts_close_on_air():
    node = NodeFactory(name="lonely", last_heartbeat_at=timezone.now())
    channel = _dead_channel(node=node)
    epoch = channel.lease_epoch
    services.channel_engine_failing(channel=channel, node=node, epoch=epoch, retry_in=10, reason="Segmentation fault")
    services.channels_check_health(now=timezone.now())  # nowhere to move it: in error, as before
    channel.refresh_from_db()
    assert channel.status == Channel.Status.ERROR

    assert services.channel_retry(channel_id=channel.pk, node=node, epoch=epoch, restart_count=channel.restart_count,
                                  now=timezone.now())

    channel.refresh_from_db()
    assert channel.status == Channel.Status.STARTING  # nobody had to restart it: its node starts it again
    assert {alert.code for alert in Alert.objects.filter(acknowledged_at__isnull=True)} == {
        "channel_engine_failing", "channel_no_failover"}
    assert "Segmentation fault" in Alert.objects.get(code="channel_engine_failing").message
    assert services.channel_mark_running(channel=channel, node=node, epoch=epoch, now=timezone.now())
    assert not Alert.objects.filter(acknowledged_at__isnull=True).exists()  # back on air: the desk sees it is over


def test_a_rest_that_ends_after_the_channel_moved_or_was_stopped_starts_nothing():
    node = NodeFactory(last_heartbeat_at=timezone.now())
    moved = _dead_channel(node=node)
    count = moved.restart_count
    Channel.objects.filter(pk=moved.pk).update(node=NodeFactory(name="other"), restart_count=count + 1)
    stopped = ChannelFactory(node=node, status=Channel.Status.STOPPED)

    with pytest.raises(Fenced):  # another node holds it: this one's write is refused
        services.channel_retry(channel_id=moved.pk, node=node, epoch=moved.lease_epoch, restart_count=count,
                               now=timezone.now())
    assert not services.channel_retry(channel_id=stopped.pk, node=node, epoch=stopped.lease_epoch,
                                      restart_count=stopped.restart_count, now=timezone.now())
    assert Channel.objects.get(pk=stopped.pk).status == Channel.Status.STOPPED
