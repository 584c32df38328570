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
            "recurrence": "none", "rrule": "", "skip_dates": "", "enabled": "on", "live_margin_seconds": 900,
            "instances-TOTAL_FORMS": 2, "instances-INITIAL_FORMS": 0, **rows,
            "recordings-TOTAL_FORMS": 0, "recordings-INITIAL_FORMS": 0,
            "podcast-TOTAL_FORMS": 0, "podcast-INITIAL_FORMS": 0,
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


def test_as_run_exports_the_filtered_range_as_csv_for_the_users_studios_only(client, studio_a, studio_b, operator_a):
    import csv
    import io
    from urllib.parse import urlencode

    from django.utils import timezone

    from playout.models import AsRunEntry
    from station.tests.factories import ChannelFactory, MediaAssetFactory

    mine, theirs = ChannelFactory(studio=studio_a, slug="a-fm"), ChannelFactory(studio=studio_b, slug="b-fm")
    asset = MediaAssetFactory(studio=studio_a, checksum="ab" * 32)
    start = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    AsRunEntry.objects.create(channel=mine, title="News", started_at=start, ended_at=start + timedelta(minutes=5),
                              duration_seconds=300, asset=asset)
    AsRunEntry.objects.create(channel=mine, title="Old", started_at=start - timedelta(days=3),
                              ended_at=start - timedelta(days=3) + timedelta(minutes=1), duration_seconds=60)
    AsRunEntry.objects.create(channel=theirs, title="Secret", started_at=start)
    client.force_login(operator_a)

    response = client.post(
        reverse("admin:playout_asrunentry_changelist") + "?" + urlencode({"started_at__gte": (start - timedelta(days=1)).isoformat()}),
        {"action": "export_csv", "select_across": 1, "index": 0, "_selected_action": [0]},
    )

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["channel"], r["title"], r["duration_seconds"], r["asset_checksum"]) for r in rows] == [
        ("a-fm", "News", "300.000", "ab" * 32)
    ]
    assert rows[0]["started_at_utc"] == start.isoformat()
