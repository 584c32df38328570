"""Podcasts of shows: each recording from the air made an episode, and each show's RSS feed.

An episode is made by a worker (``episode_make``, the ingest queue: file work at a lower priority than the air),
outside any transaction, then written by one compare-and-set:
- trimmed to the slot (the recording is cut to it already), or to its live segments when it had some (the as-run
  log's ``live`` rows: from the first one's start to the last one's end);
- at the podcast loudness, −16 LUFS integrated with true peaks under −1.5 dBTP (ffmpeg's loudnorm in two passes:
  measured, then applied as one linear gain where it can be);
- encoded as MP3 (128 kb/s, 44.1 kHz), the format every podcast app plays, with ID3 chapters from the as-run log
  (each item played, each live segment, by its start).
The feed is RSS 2.0 with the iTunes tags podcast apps and directories read (Django's feed generator, extended).
"""

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.feedgenerator import Enclosure, Rss201rev2Feed
from django.utils.translation import gettext as _

from ingest.models import MediaAsset
from ingest.services import asset_register_file
from playout.models import AsRunEntry, Episode, Podcast, ShowRecording
from station.errors import UserError
from station.feed_access import handed_out
from station.queues import enqueue

TARGET_LUFS, TRUE_PEAK_DBTP, LOUDNESS_RANGE_LU = -16.0, -1.5, 11.0
BITRATE = "128k"
CHAPTER_RESULTS = (AsRunEntry.Result.PLAYED, AsRunEntry.Result.FALLBACK, AsRunEntry.Result.LIVE)
ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"


def episode_queue(*, recording: ShowRecording) -> Episode | None:
    """A completed recording of a show with a podcast becomes an episode, made by a worker after this commits."""
    podcast = Podcast.objects.filter(show_id=recording.show_id).first()
    if podcast is None or recording.asset_id is None:
        return None
    local = timezone.localtime(recording.slot_start, recording.channel.studio.zone)
    episode, created = Episode.objects.get_or_create(
        recording=recording, defaults={"podcast": podcast, "title": f"{recording.show.name}, {local:%Y-%m-%d %H:%M}",
                                       "description": recording.show.description})
    if created:
        enqueue("ingest", "playout.tasks.episode_make", episode.pk, task_name=f"episode-{episode.pk}")
    return episode


@dataclass(frozen=True)
class Cut:
    start: float  # seconds into the recording
    seconds: float
    chapters: list[list]  # [start seconds into the episode, title]


def episode_cut(recording: ShowRecording) -> Cut:
    """Where the episode lies in the recording, and its chapters, from the as-run log of the slot."""
    began, ended = recording.started_at, recording.ended_at
    rows = list(AsRunEntry.objects.filter(channel_id=recording.channel_id, started_at__lt=ended)
                .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=began)).order_by("started_at"))
    live = [row for row in rows if row.result == AsRunEntry.Result.LIVE]
    if live:
        began = max(began, live[0].started_at)
        ended = min(ended, live[-1].ended_at or ended)
    chapters = []
    for row in rows:
        if row.result not in CHAPTER_RESULTS or (row.ended_at and row.ended_at <= began) or row.started_at >= ended:
            continue
        title = f"{row.title} ({row.presenter})" if row.presenter else row.title
        if chapters and chapters[-1][1] == title:
            continue
        chapters.append([round(max(0.0, (row.started_at - began).total_seconds()), 3), title])
    return Cut(start=(began - recording.started_at).total_seconds(), seconds=(ended - began).total_seconds(),
               chapters=chapters)


def episode_make(*, episode_id: int) -> Episode:
    """Trim, level and encode an episode from its recording (see the module's docstring)."""
    episode = Episode.objects.select_related("recording__asset", "podcast__show__channel").get(pk=episode_id)
    if episode.status != Episode.Status.MAKING:
        return episode
    recording = episode.recording
    if recording is None or recording.asset is None or not recording.asset.file:
        episode.move_to(Episode.Status.FAILED, error_message=_("Its recording or its file is gone."))
        return episode
    cut = episode_cut(recording)
    target = episode_path(episode)
    try:
        encode_episode(Path(recording.asset.file.path), target, cut=cut, title=episode.title)
        asset = asset_register_file(studio=episode.podcast.show.channel.studio, path=target, title=episode.title,
                                    origin=MediaAsset.Origin.GENERATED)
    except UserError as error:
        episode.move_to(Episode.Status.FAILED, error_message=str(error))
        return episode
    episode.move_to(Episode.Status.READY, asset=asset, duration_seconds=asset.duration_seconds, chapters=cut.chapters,
                    published_at=episode.published_at or timezone.now(), error_message="")
    return episode


def episode_path(episode: Episode) -> Path:
    return (Path(settings.MEDIA_ROOT) / "podcasts" / f"studio-{episode.podcast.show.channel.studio_id}"
            / f"show-{episode.podcast.show_id}" / f"{episode.guid}.mp3")


def encode_episode(source: Path, target: Path, *, cut: Cut, title: str) -> None:
    """``cut`` of ``source`` to ``target`` as MP3 at the podcast loudness, with its chapters; UserError if it fails."""
    window = ["-ss", f"{cut.start:.6f}", "-t", f"{cut.seconds:.6f}", "-i", str(source)]
    measured = _run(["ffmpeg", "-nostdin", "-hide_banner", "-nostats", *window, "-af",
                     f"{_loudnorm()}:print_format=json", "-f", "null", "-"], source, cut.seconds)
    try:
        stats = json.loads(re.findall(r"\{[^{}]*\}", measured)[-1])
    except (IndexError, ValueError) as error:
        raise UserError("episode_loudness_failed", _("Could not measure the loudness of %(file)s."),
                        {"file": source.name}, inner=error) from error
    applied = (f"{_loudnorm()}:measured_I={stats['input_i']}:measured_TP={stats['input_tp']}"
               f":measured_LRA={stats['input_lra']}:measured_thresh={stats['input_thresh']}"
               f":offset={stats['target_offset']}:linear=true,aresample=44100")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as metadata:
        metadata.write(_ffmetadata(title, cut))
        metadata.flush()
        _run(["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-y", *window, "-f", "ffmetadata", "-i", metadata.name,
              "-map", "0:a:0", "-map_metadata", "1", "-map_chapters", "1", "-af", applied, "-c:a", "libmp3lame",
              "-b:a", BITRATE, "-ar", "44100", "-id3v2_version", "3", str(target)], source, cut.seconds)


def _loudnorm() -> str:
    return f"loudnorm=I={TARGET_LUFS}:TP={TRUE_PEAK_DBTP}:LRA={LOUDNESS_RANGE_LU}"


def _ffmetadata(title: str, cut: Cut) -> str:
    """ffmpeg's metadata file: the episode's title and its chapters (in milliseconds; each to the next)."""
    def escaped(text: str) -> str:
        return re.sub(r"([=;#\\\n])", r"\\\1", text)

    lines = [";FFMETADATA1", f"title={escaped(title)}"]
    ends = [start for start, _ in cut.chapters[1:]] + [cut.seconds]
    for (start, chapter), end in zip(cut.chapters, ends):
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={int(start * 1000)}", f"END={int(end * 1000)}",
                  f"title={escaped(chapter)}"]
    return "\n".join(lines) + "\n"


def _run(command: list[str], source: Path, seconds: float) -> str:
    try:
        completed = subprocess.run(["nice", "-n", "10", *command], capture_output=True, text=True,
                                   timeout=60 + seconds, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise UserError("episode_encoding_failed", _("Could not make an episode of %(file)s."), {"file": source.name},
                        inner=error) from error
    if completed.returncode != 0:
        raise UserError("episode_encoding_failed", _("Could not make an episode of %(file)s: %(reason)s"),
                        {"file": source.name, "reason": (completed.stderr.strip().splitlines() or ["?"])[-1]})
    return completed.stderr


# -- the feed ---------------------------------------------------------------------------------------------------------

class PodcastFeed(Rss201rev2Feed):
    """RSS 2.0 with the iTunes namespace's channel and item tags."""

    def rss_attributes(self):
        return {**super().rss_attributes(), "xmlns:itunes": ITUNES}

    def add_root_elements(self, handler):
        super().add_root_elements(handler)
        podcast: Podcast = self.feed["podcast"]
        handler.addQuickElement("itunes:author", podcast.author or podcast.show.channel.studio.name)
        handler.addQuickElement("itunes:summary", podcast.show.description or podcast.show.name)
        handler.addQuickElement("itunes:type", "episodic")
        handler.addQuickElement("itunes:explicit", "true" if podcast.explicit else "false")
        handler.addQuickElement("itunes:category", "", {"text": podcast.category})
        if podcast.image_url:
            handler.addQuickElement("itunes:image", "", {"href": podcast.image_url})

    def add_item_elements(self, handler, item):
        super().add_item_elements(handler, item)
        episode: Episode = item["episode"]
        handler.addQuickElement("itunes:title", episode.title)
        handler.addQuickElement("itunes:duration", _clock(episode.duration_seconds or 0))
        handler.addQuickElement("itunes:episodeType", "full")
        handler.addQuickElement("itunes:explicit", "true" if episode.podcast.explicit else "false")


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _address(podcast: Podcast, path: str, request=None) -> str:
    """A podcast's address as handed out (with its token unless it is public), absolute."""
    url = request.build_absolute_uri(path) if request else settings.STATION_URL.rstrip("/") + path
    return handed_out(url, public=podcast.public, token=podcast.token)


def feed_url(podcast: Podcast, request=None) -> str:
    return _address(podcast, reverse("podcast-feed", args=[podcast.show_id]), request)


def feed(podcast: Podcast, request) -> str:
    """The podcast's RSS document: its published, ready episodes, newest first."""
    show, address = podcast.show, feed_url(podcast, request)
    document = PodcastFeed(title=show.name, link=address, language=podcast.language,
                           description=show.description or show.name, author_name=podcast.author or None,
                           feed_url=address, podcast=podcast)
    for episode in published_episodes(podcast):
        audio = _address(podcast, reverse("podcast-episode-audio", args=[show.pk, episode.guid]), request)
        document.add_item(title=episode.title, link=audio, description=episode.description or episode.title,
                          unique_id=str(episode.guid), unique_id_is_permalink=False, pubdate=episode.published_at,
                          enclosures=[Enclosure(audio, str(episode.asset.size_bytes), "audio/mpeg")], episode=episode)
    return document.writeString("utf-8")


def published_episodes(podcast: Podcast):
    return (podcast.episodes.filter(status=Episode.Status.READY, published=True, asset__isnull=False)
            .select_related("asset", "podcast").order_by("-published_at"))


def episodes_publish(*, episodes, published: bool, now: datetime | None = None) -> int:
    """Publish or unpublish episodes (an episode published for the first time is dated now)."""
    now = now or timezone.now()
    count = episodes.update(published=published, updated_at=now)
    if published:
        episodes.filter(published_at__isnull=True).update(published_at=now)
    return count

