"""Database building blocks: instants read in UTC, windows whose end must follow their start."""

import time
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


def test_a_web_process_pool_serves_at_once_after_the_server_ended_all_its_connections():
    """As after a restart or failover of PostgreSQL: psycopg's own pool tried its dead connections one by one, waiting
    longer after each, and with four of them gave up after its 10 s timeout."""
    from station.postgres.base import DatabaseWrapper

    name = "pool_after_restart"
    options = {**connection.settings_dict["OPTIONS"], "application_name": name,
               "pool": {"min_size": 4, "max_size": 4, "timeout": 10}}
    pooled = DatabaseWrapper({**connection.settings_dict, "OPTIONS": options, "CONN_MAX_AGE": 0}, alias=name)
    pooled.pool.open(wait=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                           [name])
            assert cursor.fetchone() == (4,)
        began = time.monotonic()
        with pooled.pool.connection() as served:  # as the wrapper's get_new_connection takes one
            assert served.execute("SELECT 1").fetchone() == (1,)
        assert time.monotonic() - began < 5
    finally:
        DatabaseWrapper._connection_pools.pop(name).close()
