"""Database building blocks: instants read in UTC, windows whose end must follow their start."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from playout.models import Show
from station.db import UtcTimestamptzLoader
from station.tests import factories

pytestmark = pytest.mark.django_db


def test_instants_come_back_in_utc_whatever_offset_they_were_written_with():
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::timestamptz, '2026-03-29 01:30:00.123456+02'::timestamptz, NULL::timestamptz",
                       [datetime(2026, 10, 25, 1, 30, tzinfo=UTC)])
        read = cursor.fetchone()
    assert read == (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), datetime(2026, 3, 28, 23, 30, 0, 123456, tzinfo=UTC), None)
    assert all(instant.tzinfo is UTC for instant in read[:2])
    # psycopg's C loader reads them, not Django's Python one
    assert connection.connection.adapters.get_loader(1184, 0) is UtcTimestamptzLoader


def test_a_window_ending_before_it_starts_is_refused_without_a_query(django_assert_num_queries):
    channel = factories.ChannelFactory()
    start = datetime(2027, 1, 4, 7, tzinfo=UTC)
    show = Show(channel=channel, name="Breakfast", start_at=start, end_at=start - timedelta(minutes=1))
    with django_assert_num_queries(0), pytest.raises(ValidationError) as refused:
        show.validate_constraints()
    assert [error.code for error in refused.value.error_dict["__all__"]] == ["end_before_start"]
    show.end_at = start + timedelta(hours=1)
    show.validate_constraints()
    show.validate_constraints(exclude={"end_at"})  # a form without the end leaves the check to the database


@pytest.mark.filterwarnings("ignore:DateTimeField Show.end_at received a naive datetime")
def test_times_python_cannot_compare_are_checked_as_django_would():
    channel = factories.ChannelFactory()
    # text with different offsets: 05:30Z ends after 05:00Z although "06:30+00:00" < "07:00+02:00" as text
    Show(channel=channel, name="Offsets", start_at="2027-01-04T07:00:00+02:00",
         end_at="2027-01-04T06:30:00+00:00").validate_constraints()
    start = datetime(2027, 1, 4, 7, tzinfo=UTC)
    with pytest.raises(ValidationError):
        Show(channel=channel, name="Naive end", start_at=start, end_at=datetime(2027, 1, 4, 6)).validate_constraints()


def test_the_database_still_refuses_a_window_ending_before_it_starts():
    start = datetime(2027, 1, 4, 7, tzinfo=UTC)
    with pytest.raises(IntegrityError, match="show_end_after_start"), transaction.atomic():
        factories.ShowFactory(start_at=start, end_at=start)
