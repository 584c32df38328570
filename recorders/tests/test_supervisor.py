"""The recorder supervisor's own policy, apart from the recordings it drives (test_recording.py)."""

import subprocess

import pytest

from recorders.supervisor import FINISHING_NICENESS, RecorderSupervisor
from station.tests.factories import NodeFactory


def _niceness_of_a_child() -> int:
    """The nice value a process started from the calling thread runs at."""
    return int(subprocess.run(["sh", "-c", "ps -o ni= -p $$"], capture_output=True, text=True, check=True).stdout)


@pytest.mark.django_db
def test_finishing_and_the_tools_it_runs_yield_the_cpu_to_the_recordings_starting():
    supervisor = RecorderSupervisor(node=NodeFactory(), owner="host-1/1/test")
    try:  # what a joining ffmpeg or a probing ffprobe, started by a finishing thread, runs at
        finishing = supervisor.finishing.submit(_niceness_of_a_child).result(timeout=10)
    finally:
        supervisor.finishing.shutdown(wait=True)
    assert finishing == FINISHING_NICENESS
    assert _niceness_of_a_child() == 0  # the loop, which starts the recording ffmpegs, keeps its priority
