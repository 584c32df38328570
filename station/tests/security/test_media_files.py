"""Uploaded and downloaded files are probed as media, never as playlists of the host's files (issue 14, 7).

An uploaded HLS playlist could reference local files, and ffprobe opened them; its errors showed
absolute paths and whether they existed. ffprobe now opens media containers only, with no
protocol but the file itself, and reasons name the file alone.
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ingest.media import generate_tone
from ingest.models import MediaAsset

pytestmark = pytest.mark.django_db


@pytest.fixture
def local_secret(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    secret = generate_tone(tmp_path / "another-studio" / "programme.mp3", frequency=440, seconds=2)
    return secret


PLAYLISTS = {
    "HLS, file URL": "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{path}\n#EXT-X-ENDLIST\n",
    "HLS, plain path": "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{path}\n#EXT-X-ENDLIST\n",
    "concat script": "ffconcat version 1.0\nfile '{path}'\n",
    "concat protocol in HLS": "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nconcat:{path}|{path}\n#EXT-X-ENDLIST\n",
}


@pytest.mark.parametrize("name", PLAYLISTS)
@pytest.mark.parametrize("suffix", [".m3u8", ".mp3"])
def test_an_uploaded_playlist_naming_local_files_is_refused_and_says_nothing_of_them(api, operator_b, studio_b,
                                                                                     local_secret, name, suffix):
    playlist = PLAYLISTS[name].format(path=local_secret).encode()
    response = api(operator_b).post("/api/v1/media/", {"studio": studio_b.pk, "title": "Owned",
                                                       "file": SimpleUploadedFile(f"list{suffix}", playlist)},
                                    format="multipart")

    assert response.status_code == 400 and response.json()["error"]["code"] == "not_media"
    assert not MediaAsset.objects.exists()
    message = str(response.json()["error"])
    assert str(local_secret.parent) not in message and "programme" not in message
    assert str(local_secret.parent.parent) not in message  # nor where the station keeps its own files
