"""Podcasts: a show's recording made an episode with real ffmpeg, and its RSS feed read by a real podcast parser."""

import json
import subprocess
import xml.etree.ElementTree as ET
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import pytest
from django.urls import reverse
from django.utils import timezone

from ingest.media import measure_loudness
from ingest.services import asset_register_file
from playout import podcasts
from playout.models import AsRunEntry, Episode, Podcast, ShowRecording
from station.tests.api_support import Resource, assert_permission_matrix
from station.tests.factories import ShowFactory

pytestmark = pytest.mark.django_db
SECONDS = 6.0
ITUNES = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"


def _recording(media_root: Path, *, presenter_from: float | None = None) -> ShowRecording:
    """A show's 6 s recording from the air, quiet (about −30 LUFS), with two items in the as-run log (and a live
    segment from ``presenter_from`` s for 3 s)."""
    show = ShowFactory(name="Drive Time", description="Songs for the road.", record_air=True)
    path = media_root / "shows" / "drive.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=440:sample_rate=44100:duration={SECONDS},volume=-27dB", "-ac", "2", str(path)],
                   check=True, timeout=30)
    asset = asset_register_file(studio=show.channel.studio, path=path, title="Drive Time")
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    recording = ShowRecording.objects.create(
        show=show, channel=show.channel, slot_start=start, slot_end=start + timedelta(seconds=SECONDS),
        started_at=start, ended_at=start + timedelta(seconds=SECONDS), asset=asset,
        status=ShowRecording.Status.COMPLETED)
    rows = [("Song A", 0, 3, AsRunEntry.Result.PLAYED, ""), ("Song B", 3, 6, AsRunEntry.Result.PLAYED, "")]
    if presenter_from is not None:
        rows = [("Song A", 0, presenter_from, AsRunEntry.Result.PLAYED, ""),
                ("Drive Time", presenter_from, presenter_from + 3, AsRunEntry.Result.LIVE, "Ada"),
                ("Song B", presenter_from + 3, 6, AsRunEntry.Result.PLAYED, "")]
    for title, begins, ends, result, presenter in rows:
        AsRunEntry.objects.create(channel=show.channel, title=title, result=result, presenter=presenter,
                                  started_at=start + timedelta(seconds=begins), ended_at=start + timedelta(seconds=ends),
                                  duration_seconds=ends - begins)
    Podcast.objects.create(show=show, author="Radio One", image_url="https://radio.example/art.jpg", category="Music")
    return recording


def _chapters(path: Path) -> list[tuple[float, str]]:
    probed = subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(path)],
                            capture_output=True, text=True, check=True, timeout=30)
    return [(float(c["start_time"]), c["tags"]["title"]) for c in json.loads(probed.stdout)["chapters"]]


def _made(recording: ShowRecording) -> Episode:
    episode = podcasts.episode_queue(recording=recording)
    return podcasts.episode_make(episode_id=episode.pk)


def test_a_recording_becomes_an_mp3_episode_at_the_podcast_loudness_with_chapters(media_root):
    episode = _made(_recording(media_root))

    assert episode.status == Episode.Status.READY, episode.error_message
    path = Path(episode.asset.file.path)
    assert path.suffix == ".mp3" and episode.asset.format_name == "mp3"
    assert episode.duration_seconds == pytest.approx(SECONDS, abs=0.1)
    loudness = measure_loudness(path, duration_seconds=SECONDS)
    assert loudness.integrated_lufs == pytest.approx(-16.0, abs=1.0)  # from about −30
    assert loudness.true_peak_dbtp <= -1.0
    assert _chapters(path) == [(0.0, "Song A"), (3.0, "Song B")]
    assert episode.chapters == [[0.0, "Song A"], [3.0, "Song B"]]
    assert episode.title.startswith("Drive Time, ") and episode.published and episode.published_at


def test_a_live_show_is_trimmed_to_its_live_segments(media_root):
    episode = _made(_recording(media_root, presenter_from=1.5))

    assert episode.duration_seconds == pytest.approx(3.0, abs=0.1)
    assert _chapters(Path(episode.asset.file.path)) == [(0.0, "Drive Time (Ada)")]


def test_the_feed_is_rss_2_with_itunes_tags_that_a_podcast_parser_reads_and_its_audio_seeks(client, media_root):
    episode = _made(_recording(media_root))
    podcast = episode.podcast
    feed_path = reverse("podcast-feed", args=[podcast.show_id])

    assert client.get(feed_path).status_code == 404  # private: its token
    assert client.get(feed_path, {"token": "wrong"}).status_code == 404
    response = client.get(feed_path, {"token": podcast.token})
    assert response.status_code == 200 and response["Content-Type"].startswith("application/rss+xml")

    # the format: RSS 2.0's required elements and the iTunes tags directories ask for
    rss = ET.fromstring(response.content)
    assert rss.tag == "rss" and rss.get("version") == "2.0"
    channel = rss.find("channel")
    for required in ("title", "link", "description", "language"):
        assert channel.findtext(required), required
    assert channel.findtext(f"{ITUNES}author") == "Radio One"
    assert channel.find(f"{ITUNES}image").get("href") == "https://radio.example/art.jpg"
    assert channel.find(f"{ITUNES}category").get("text") == "Music"
    assert channel.findtext(f"{ITUNES}explicit") == "false"
    item = channel.find("item")
    enclosure = item.find("enclosure")
    assert enclosure.get("type") == "audio/mpeg" and int(enclosure.get("length")) == episode.asset.size_bytes
    assert item.find("guid").get("isPermaLink") == "false" and item.findtext("guid") == str(episode.guid)
    assert parsedate_to_datetime(item.findtext("pubDate")) == episode.published_at.replace(microsecond=0)
    assert item.findtext(f"{ITUNES}duration") == "00:00:06"

    # a real podcast parser
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert parsed.feed.title == "Drive Time" and parsed.feed.author == "Radio One"
    assert parsed.feed.image.href == "https://radio.example/art.jpg"
    [entry] = parsed.entries
    assert entry.title == episode.title and entry.id == str(episode.guid) and entry.itunes_duration == "00:00:06"
    [audio] = entry.enclosures
    assert audio.type == "audio/mpeg" and int(audio.length) == episode.asset.size_bytes

    # the enclosure, as podcast apps fetch it: whole, or a range to seek
    whole = client.get(audio.href)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    assert b"".join(whole.streaming_content) == Path(episode.asset.file.path).read_bytes()
    part = client.get(audio.href, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 100-199/{episode.asset.size_bytes}"
    assert part.content == Path(episode.asset.file.path).read_bytes()[100:200]
    assert client.get(audio.href, HTTP_RANGE=f"bytes={episode.asset.size_bytes}-").status_code == 416


def test_an_unpublished_episode_leaves_the_feed_and_its_audio_and_a_public_podcast_needs_no_token(client, media_root):
    episode = _made(_recording(media_root))
    podcast = episode.podcast
    Podcast.objects.filter(pk=podcast.pk).update(public=True)
    feed_path = reverse("podcast-feed", args=[podcast.show_id])
    audio = reverse("podcast-episode-audio", args=[podcast.show_id, episode.guid])
    assert len(feedparser.parse(client.get(feed_path).content).entries) == 1

    podcasts.episodes_publish(episodes=Episode.objects.filter(pk=episode.pk), published=False)
    assert feedparser.parse(client.get(feed_path).content).entries == []
    assert client.get(audio).status_code == 404


def test_the_admin_edits_and_unpublishes_an_episode(client, superuser, media_root):
    episode = _made(_recording(media_root))
    client.force_login(superuser)
    page = client.get(reverse("admin:playout_episode_change", args=[episode.pk])).content.decode()
    assert "0:00 Song A · 0:03 Song B" in page
    client.post(reverse("admin:playout_episode_change", args=[episode.pk]),
                {"title": "Drive Time: the best of", "description": "Edited.", "published": "on",
                 "published_at_0": episode.published_at.strftime("%Y-%m-%d"),
                 "published_at_1": episode.published_at.strftime("%H:%M:%S")})
    assert Episode.objects.get(pk=episode.pk).title == "Drive Time: the best of"
    client.post(reverse("admin:playout_episode_changelist"), {"action": "unpublish", "_selected_action": [episode.pk]})
    assert not Episode.objects.get(pk=episode.pk).published


def test_a_podcast_needs_its_show_recorded(db):
    podcast = Podcast(show=ShowFactory(record_air=False))
    with pytest.raises(Exception) as refused:
        podcast.full_clean()
    assert "mark the show recorded first" in str(refused.value)



def _podcast(studio):
    return Podcast.objects.create(show=ShowFactory(channel__studio=studio, record_air=True))


def _episode(studio):
    return Episode.objects.create(podcast=_podcast(studio), title="Episode", status=Episode.Status.READY)


@pytest.mark.parametrize("resource", [
    Resource("podcasts", make=_podcast, write=("patch", "", {"author": "Radio One"})),
    Resource("episodes", make=_episode, write=("patch", "", {"title": "Edited"})),
], ids=lambda resource: f"{resource.path}-{resource.write[0]}")
def test_permission_matrix(api, role_users, studio_a, studio_b, resource):
    assert_permission_matrix(resource, role_users, studio_a)


def test_over_the_api_a_podcast_is_set_up_and_an_episode_unpublished(api, operator_a, studio_a, media_root):
    client = api(operator_a)
    show = ShowFactory(channel__studio=studio_a, record_air=True)
    made = client.post("/api/v1/podcasts/", {"show": show.pk, "author": "Radio One", "category": "News"}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["feed_url"].endswith(f"/podcasts/{show.pk}.rss?token={Podcast.objects.get().token}")
    unrecorded = client.post("/api/v1/podcasts/", {"show": ShowFactory(channel__studio=studio_a).pk}, format="json")
    assert unrecorded.status_code == 400

    episode = Episode.objects.create(podcast=Podcast.objects.get(), title="One", status=Episode.Status.READY)
    changed = client.patch(f"/api/v1/episodes/{episode.pk}/", {"published": False, "title": "Two"}, format="json")
    assert changed.status_code == 200 and changed.json()["title"] == "Two" and not changed.json()["published"]
    assert client.patch(f"/api/v1/episodes/{episode.pk}/", {"status": "making"}, format="json").json()["status"] == "ready"
    assert client.delete(f"/api/v1/episodes/{episode.pk}/").status_code == 405
