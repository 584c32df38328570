"""The demo station: enough of everything to click through the admin and watch the dashboards."""

import socket
from datetime import datetime, time, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from ingest import media
from ingest.models import MediaAsset
from ingest.services import asset_register_file
from playout.models import Channel, Playlist, PlaylistItem, Show
from recorders.models import Recorder, RecorderSchedule
from station.models import Node, Studio, StudioMembership
from station.recurrence import Recurrence, to_utc

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"
DEMO_TONES = [("Tone A (440 Hz)", 440), ("Tone B (660 Hz)", 660), ("Tone C (880 Hz)", 880)]
TONE_SECONDS = 20
DEMO_STREAM_PORT = 8100


@transaction.atomic
def seed_demo() -> Studio:
    """Create the demo station, or leave it as it is if it exists; return its studio."""
    studio, _ = Studio.objects.get_or_create(
        slug="demo", defaults={"name": "Demo Studio", "time_zone": "Europe/London"}
    )
    user = _demo_user()
    StudioMembership.objects.get_or_create(studio=studio, user=user, defaults={"role": StudioMembership.Role.OPERATOR})
    node, _ = Node.objects.get_or_create(
        name="demo-node",
        defaults={"hostname": socket.gethostname(), "capabilities": [Node.Capability.RECORD, Node.Capability.PLAYOUT]},
    )
    assets = [_demo_tone(studio, title, frequency) for title, frequency in DEMO_TONES]
    playlist, created = Playlist.objects.get_or_create(studio=studio, name="Demo tones")
    if created:
        PlaylistItem.objects.bulk_create(
            PlaylistItem(playlist=playlist, position=position, asset=asset) for position, asset in enumerate(assets)
        )
    channel, _ = Channel.objects.get_or_create(
        slug="demo-fm",
        defaults={
            "studio": studio,
            "name": "Demo FM",
            "node": node,
            "output_type": Channel.Output.HARBOR,
            "output_settings": {"port": DEMO_STREAM_PORT, "mount": "demo"},
            "fallback_playlist": playlist,
            "status": Channel.Status.STARTING,  # on air as soon as the node agent runs
        },
    )
    tomorrow = studio.local_now().date() + timedelta(days=1)
    Show.objects.get_or_create(
        channel=channel,
        name="Morning tones",
        defaults={**_daily_window(studio, tomorrow, time(7, 0), minutes=60), "playlist": playlist},
    )
    recorder, _ = Recorder.objects.get_or_create(
        studio=studio,
        name="Studio mic",
        defaults={"source_url": "tone:1000", "node": node, "output_format": Recorder.OutputFormat.MP3},
    )
    RecorderSchedule.objects.get_or_create(
        recorder=recorder,
        name="Morning news (recording)",
        defaults=_daily_window(studio, tomorrow, time(7, 0), minutes=30),
    )
    return studio


def _demo_user():
    user, created = get_user_model().objects.get_or_create(
        username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True, "email": "demo@example.org"}
    )
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
    return user


def _demo_tone(studio: Studio, title: str, frequency: int) -> MediaAsset:
    path = Path(settings.MEDIA_ROOT) / "demo" / f"tone-{frequency}.mp3"
    existing = MediaAsset.objects.filter(studio=studio, title=title, status=MediaAsset.Status.READY).first()
    if existing and path.exists():
        return existing
    media.generate_tone(path, frequency=frequency, seconds=TONE_SECONDS)
    return asset_register_file(studio=studio, path=path, title=title, origin=MediaAsset.Origin.GENERATED)


def _daily_window(studio: Studio, day, start: time, *, minutes: int) -> dict:
    local_start = datetime.combine(day, start)
    return {
        "start_at": to_utc(local_start, studio.zone),
        "end_at": to_utc(local_start + timedelta(minutes=minutes), studio.zone),
        "recurrence": Recurrence.DAILY,
    }
