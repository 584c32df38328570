import pytest

from station.tests.processes import database_env, spawn_manage, stop


@pytest.fixture
def agents(media_root):
    """Start node agents by name; all are stopped at the end of the test."""
    started = []

    def start(name: str, **env):
        process = spawn_manage("run_node", "--name", name, env=database_env(**env))
        started.append(process)
        return process

    yield start
    stop(*started)
