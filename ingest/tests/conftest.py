import pytest

from ingest.media import generate_tone
from ingest.models import IngestSource
from ingest.tests.media_server import MediaServer


@pytest.fixture(scope="session")
def tones(tmp_path_factory):
    """Real MP3 tones (2 s and 3 s) and a file that only looks like one."""
    directory = tmp_path_factory.mktemp("tones")
    fake = directory / "fake.mp3"
    fake.write_bytes(b"\x00not audio at all\xff" * 4096)
    return {
        "two": generate_tone(directory / "two.mp3", frequency=440, seconds=2),
        "three": generate_tone(directory / "three.mp3", frequency=660, seconds=3),
        "fake": fake,
    }


@pytest.fixture
def server():
    media_server = MediaServer()
    yield media_server
    media_server.close()


@pytest.fixture
def ingest_settings(settings, tmp_path):
    """Fast limits for tests: short stalls, few attempts, tiny backoff, a local archive."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.INGEST_READ_TIMEOUT_SECONDS = 0.5
    settings.INGEST_DOWNLOAD_ATTEMPTS = 3
    settings.INGEST_RETRY_BACKOFF_SECONDS = 0.01
    settings.PUBLISH_URL = ""
    return settings


@pytest.fixture
def url_source(studio_a):
    def make(*urls: str, remember: bool = True) -> IngestSource:
        return IngestSource.objects.create(studio=studio_a, name="Bulletins", kind=IngestSource.Kind.URL_LIST,
                                           url_list="\n".join(urls), remember_downloads=remember)

    return make
