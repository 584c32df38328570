"""State changes of playout channels."""

from django.db import transaction
from django.db.models import F

from playout.models import Channel
from station import events


def _announce(channel: Channel) -> None:
    events.publish(
        studio_id=channel.studio_id,
        type="playout.channel",
        payload={
            "id": channel.pk,
            "status": channel.status,
            "node": channel.node_id,
            "restart_count": channel.restart_count,
            "paused": channel.paused,
            "error_message": channel.error_message,
        },
    )


@transaction.atomic
def channel_restart(*, channel: Channel) -> Channel:
    """Ask the channel's node agent to (re)start its engine."""
    channel.move_to(Channel.Status.STARTING, restart_count=F("restart_count") + 1, error_message="")
    _announce(channel)
    return channel
