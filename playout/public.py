"""What a channel's listeners may see of it: the title on air and the next one, with their times, nothing else.

A channel marked ``public_now_playing`` is read without authentication at two addresses, for the station's websites:
``/public/channels/<slug>/now-playing`` (JSON, ``playout.views.public_now_playing``: cacheable, conditional) and
``/public/channels/<slug>/now-playing/events``, Server-Sent Events that carry the same document at every change of what is on air
(``playout.consumers.NowPlayingEvents``, fed by the web process's event hub). Both are limited per client address
(``station.ratelimit``). No ids, nodes, results, errors or other channels: a row the engine logs as silence, a pause
or dead air shows nothing on air.
"""

from datetime import datetime

from django.conf import settings
from django.urls import reverse

from playout.events import as_run_row, item_row
from playout.models import AsRunEntry, Channel
from playout.selectors import channel_now_playing

HEARD = frozenset({AsRunEntry.Result.PLAYED, AsRunEntry.Result.FALLBACK})


def public_channel(slug: str) -> Channel | None:
    return Channel.objects.filter(slug=slug, public_now_playing=True).first()


def listener_view(channel: Channel, *, on_air: dict | None, following: dict | None) -> dict:
    """The public document from the rows dashboards get (``playout.events``: an as-run row, a timeline item)."""
    heard = on_air is not None and on_air["result"] in HEARD and (on_air["asset"] or on_air["scheduled_item"])
    return {
        "channel": {"name": channel.name, "slug": channel.slug},
        "now": {"title": on_air["title"], "started_at": on_air["started_at"], "ends_at": on_air["ends_at"]}
        if heard else None,
        "next": {"title": following["title"], "start_at": following["start_at"]} if following else None,
    }


def channel_listener_view(channel: Channel, *, now: datetime) -> dict:
    playing = channel_now_playing(channel, now=now)
    return listener_view(channel, on_air=as_run_row(playing.on_air) if playing.on_air else None,
                         following=item_row(playing.next) if playing.next else None)


def public_urls(channel: Channel) -> dict | None:
    """The channel's public now-playing addresses, once it publishes them."""
    if not channel.public_now_playing:
        return None
    document = settings.STATION_URL.rstrip("/") + reverse("public:now-playing", args=[channel.slug])
    return {"json": document, "events": document + "/events"}
