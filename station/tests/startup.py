"""Prepare the test process (station.startup) before pytest-django reads the settings: ``-p`` in pyproject.toml."""

import pytest

from station import startup


@pytest.hookimpl(tryfirst=True)  # pytest-django sets Django up in this hook, before any conftest loads
def pytest_load_initial_conftests():
    startup.prepare()
