from datetime import timedelta

import pytest
from django.urls import reverse

from playout.models import ShowInstance
from station.tests.factories import PlaylistFactory, ShowFactory, ShowInstanceFactory

pytestmark = pytest.mark.django_db


def _instance_form(show, start, end, channel=None):
    return {
        "show": show.pk, "channel": (channel or show.channel).pk,
        "start_at_0": start.strftime("%Y-%m-%d"), "start_at_1": start.strftime("%H:%M:%S"),
        "end_at_0": end.strftime("%Y-%m-%d"), "end_at_1": end.strftime("%H:%M:%S"),
    }


def test_admin_shows_a_clear_error_for_overlapping_shows_on_a_channel(client, superuser):
    existing = ShowInstanceFactory()
    client.force_login(superuser)
    response = client.post(
        reverse("admin:playout_showinstance_add"),
        _instance_form(existing.show, existing.start_at + timedelta(minutes=15), existing.end_at + timedelta(minutes=15)),
    )
    assert response.status_code == 200
    assert "This show overlaps another show on the same channel." in response.content.decode()
    assert ShowInstance.objects.count() == 1


def test_two_overlapping_rows_in_one_inline_save_give_a_message_not_a_500(client, superuser):
    show = ShowFactory()
    start = show.start_at.replace(microsecond=0)
    client.force_login(superuser)
    rows = {}
    for index, offset in enumerate([0, 30]):
        row_start, row_end = start + timedelta(minutes=offset), start + timedelta(minutes=offset + 60)
        rows.update({
            f"instances-{index}-channel": show.channel.pk,
            f"instances-{index}-start_at_0": row_start.strftime("%Y-%m-%d"),
            f"instances-{index}-start_at_1": row_start.strftime("%H:%M:%S"),
            f"instances-{index}-end_at_0": row_end.strftime("%Y-%m-%d"),
            f"instances-{index}-end_at_1": row_end.strftime("%H:%M:%S"),
        })
    response = client.post(
        reverse("admin:playout_show_change", args=[show.pk]),
        {
            "channel": show.channel.pk, "name": show.name, "description": "",
            "start_at_0": start.strftime("%Y-%m-%d"), "start_at_1": start.strftime("%H:%M:%S"),
            "end_at_0": show.end_at.strftime("%Y-%m-%d"), "end_at_1": show.end_at.strftime("%H:%M:%S"),
            "recurrence": "none", "rrule": "", "skip_dates": "", "enabled": "on",
            "instances-TOTAL_FORMS": 2, "instances-INITIAL_FORMS": 0, **rows,
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "This show overlaps another show on the same channel." in response.content.decode()
    assert not ShowInstance.objects.exists()


def test_a_playlist_of_another_studio_cannot_be_a_channels_fallback(db):
    from django.core.exceptions import ValidationError

    from station.tests.factories import ChannelFactory

    channel = ChannelFactory(fallback_playlist=PlaylistFactory())
    with pytest.raises(ValidationError) as raised:
        channel.full_clean()
    assert "fallback_playlist" in raised.value.error_dict
