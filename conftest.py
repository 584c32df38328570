import pytest

from station.tests import factories

pytest_plugins = ["station.tests.api_support"]


@pytest.fixture(scope="session", autouse=True)
def channel_layer_pool_closed(django_db_setup, django_db_blocker):
    """The channel layer's listener and pool are closed before the test database is dropped, which their connections
    would block."""
    yield
    from station.channel_layer import PostgresLayer
    from station.layer_loop import on_layer_loop_sync

    on_layer_loop_sync(PostgresLayer.close_all)


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
def loopback_allowed(settings):
    """The station may fetch from this machine: tests serve their feeds, streams and receivers on loopback.

    By default it refuses internal addresses for operators (station.outbound); a station whose
    sources are internal allows their networks the same way (OUTBOUND_ALLOWED_NETWORKS).
    """
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]


@pytest.fixture
def media_root(settings, tmp_path):
    """MEDIA_ROOT in the test's own directory; harbors listen on whatever free port the test finds."""
    settings.PLAYOUT_HARBOR_PORTS = "1024-65535"
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture
def superuser(db):
    return factories.UserFactory(username="root", is_superuser=True)


@pytest.fixture(autouse=True)
def forget_failed_logins(request, django_db_blocker):
    """Failed logins are counted in a cache table no test's flush empties: each test starts with none.

    Only after a test that used the test database: without one, the connection is the real database's.
    """
    from django.core.cache import caches

    from station.login_throttle import CACHE_ALIAS

    yield
    if "_django_db_helper" in request.fixturenames:
        with django_db_blocker.unblock():
            caches[CACHE_ALIAS].clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A test's timeline events (station.signals) go out before its fixtures flush the database."""
    yield
    from station.signals import announcer

    announcer.wait_idle()


@pytest.fixture(scope="session", autouse=True)
def close_channel_layer(django_db_setup):
    """Close the channel layer's connections before the test database is dropped."""
    yield
    from channels.layers import get_channel_layer

    from station.channel_layer import PostgresLayer
    from station.layer_loop import on_layer_loop_sync

    layer = get_channel_layer()
    if isinstance(layer, PostgresLayer):
        on_layer_loop_sync(layer.close)
