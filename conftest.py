import pytest

from station.tests import factories

pytest_plugins = ["station.tests.api_support"]


@pytest.fixture
def studio_a(db):
    return factories.StudioFactory(name="Studio A", slug="a")


@pytest.fixture
def studio_b(db):
    return factories.StudioFactory(name="Studio B", slug="b")


@pytest.fixture
def operator_a(studio_a):
    return factories.member_of(studio_a, username="operator_a")


@pytest.fixture
def viewer_a(studio_a):
    return factories.member_of(studio_a, username="viewer_a", role="viewer")


@pytest.fixture
def operator_b(studio_b):
    return factories.member_of(studio_b, username="operator_b")


@pytest.fixture
def superuser(db):
    return factories.UserFactory(username="root", is_superuser=True)
