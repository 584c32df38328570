"""The recorder supervisor's own policy, apart from the recordings it drives (test_recording.py)."""

import pytest

from recorders.supervisor import RecorderSupervisor
from station.processes import BACKGROUND_NICENESS
from station.tests.factories import NodeFactory
from station.tests.processes import niceness_of_a_child


@pytest.mark.django_db
def test_finishing_and_the_tools_it_runs_yield_the_cpu_to_the_recordings_starting():
    supervisor = RecorderSupervisor(node=NodeFactory(), owner="host-1/1/test")
    try:  # what a joining ffmpeg or a probing ffprobe, started by a finishing thread, runs at
        finishing = supervisor.finishing.submit(niceness_of_a_child).result(timeout=10)
    finally:
        supervisor.finishing.shutdown(wait=True)
    assert finishing == BACKGROUND_NICENESS
    assert niceness_of_a_child() == 0  # the loop, which starts the recording ffmpegs, keeps its priority
