from datetime import UTC, datetime, timedelta

import pytest

from recorders import selectors
from station.tests.factories import NodeFactory, RecorderFactory, ScheduleFactory

pytestmark = pytest.mark.django_db


def test_the_windows_to_arm_are_those_whose_recording_begins_by_then_each_recorders_pre_roll_counted():
    node = NodeFactory()
    until = datetime(2027, 1, 4, 6, tzinfo=UTC)
    plain = RecorderFactory(node=node)
    due = ScheduleFactory(recorder=plain, start_at=until, end_at=until + timedelta(seconds=60))
    ScheduleFactory(recorder=plain, start_at=until + timedelta(seconds=61), end_at=until + timedelta(seconds=120))
    rolled_to_then = ScheduleFactory(recorder=RecorderFactory(node=node, pre_roll_seconds=600),
                                     start_at=until + timedelta(seconds=600), end_at=until + timedelta(seconds=700))
    ScheduleFactory(recorder=RecorderFactory(node=node, pre_roll_seconds=600),
                    start_at=until + timedelta(seconds=601), end_at=until + timedelta(seconds=700))

    assert selectors.windows_to_arm(node, until=until) == [due, rolled_to_then]
