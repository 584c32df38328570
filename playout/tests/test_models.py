from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from playout.models import AsRunEntry
from station.tests.factories import ChannelFactory, ShowInstanceFactory

pytestmark = pytest.mark.django_db


def test_database_rejects_two_shows_overlapping_on_one_channel():
    first = ShowInstanceFactory()
    with pytest.raises(IntegrityError, match="show_instance_no_overlap"), transaction.atomic():
        ShowInstanceFactory(show=first.show, start_at=first.start_at + timedelta(minutes=30), end_at=first.end_at + timedelta(minutes=30))


def test_shows_on_different_channels_or_cancelled_do_not_clash():
    first = ShowInstanceFactory()
    ShowInstanceFactory(start_at=first.start_at, end_at=first.end_at)
    ShowInstanceFactory(show=first.show, start_at=first.start_at, end_at=first.end_at, cancelled=True)


def test_at_most_one_open_as_run_row_per_channel():
    channel = ChannelFactory()
    now = timezone.now()
    AsRunEntry.objects.create(channel=channel, title="closed", started_at=now - timedelta(minutes=2), ended_at=now - timedelta(minutes=1))
    AsRunEntry.objects.create(channel=channel, title="on air", started_at=now)
    with pytest.raises(IntegrityError, match="as_run_one_open_row_per_channel"), transaction.atomic():
        AsRunEntry.objects.create(channel=channel, title="second open row", started_at=now)
    AsRunEntry.objects.create(channel=ChannelFactory(), title="other channel", started_at=now)
