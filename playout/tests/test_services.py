import pytest

from playout import services
from playout.models import Channel
from station.errors import UserError
from station.tests.factories import ChannelFactory

pytestmark = pytest.mark.django_db


def test_pausing_twice_or_resuming_a_playing_channel_says_so():
    channel = ChannelFactory(status=Channel.Status.RUNNING)
    services.channel_pause(channel=channel)
    with pytest.raises(UserError) as twice:
        services.channel_pause(channel=channel)
    assert twice.value.code == "already_paused"
    services.channel_resume(channel=channel)
    with pytest.raises(UserError) as again:
        services.channel_resume(channel=channel)
    assert again.value.code == "not_paused"


def test_skip_needs_a_channel_on_air():
    with pytest.raises(UserError) as raised:
        services.channel_skip(channel=ChannelFactory(status=Channel.Status.STOPPED))
    assert raised.value.code == "channel_not_running"


def test_restart_counts_and_asks_the_agent_to_start_again():
    channel = ChannelFactory(status=Channel.Status.RUNNING)
    services.channel_restart(channel=channel)
    channel.refresh_from_db()
    assert (channel.status, channel.restart_count) == (Channel.Status.STARTING, 1)


def test_restarting_a_channel_without_a_live_node_places_it_on_one():
    from django.utils import timezone

    from station.tests.factories import NodeFactory

    live = NodeFactory(name="live", last_heartbeat_at=timezone.now())
    channel = ChannelFactory(status=Channel.Status.STOPPED, node=None)
    services.channel_restart(channel=channel)
    channel.refresh_from_db()
    assert (channel.status, channel.node) == (Channel.Status.STARTING, live)
