"""The default channel layer's housekeeping: what expired goes, what lives stays."""

from datetime import timedelta

from channels_postgres.models import GroupChannel, Message
from django.utils import timezone

from station import channel_layer


def test_prune_forgets_expired_messages_and_memberships_only(db):
    now = timezone.now()
    Message.objects.create(channel="specific.a!1", message=b"old", expire=now - timedelta(seconds=1))
    Message.objects.create(channel="specific.a!1", message=b"new", expire=now + timedelta(seconds=60))
    GroupChannel.objects.create(group_key="asgi:group:studio-1", channel="specific.dead!1", expire=now - timedelta(seconds=1))
    GroupChannel.objects.create(group_key="asgi:group:studio-1", channel="specific.live!1", expire=now + timedelta(hours=1))

    assert channel_layer.prune(now) == {"messages": 1, "memberships": 1}
    assert list(Message.objects.values_list("message", flat=True)) == [b"new"]
    assert list(GroupChannel.objects.values_list("channel", flat=True)) == ["specific.live!1"]
