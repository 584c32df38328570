import hashlib
import json
import re
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.http import parse_etags, quote_etag
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from ingest.models import MediaAsset
from playout.cacher import asset_id_from_token
from playout.calendars import SOURCE as CALENDARS
from playout import podcasts
from playout.models import Channel, Podcast
from playout.outputs.hls import hls_directory
from playout.public import channel_listener_view, public_channel
from station import calendars
from station.models import Node
from station.feed_access import may_read
from station.ranges import ranged_file
from station.ratelimit import too_many_requests

PUBLIC_MAX_AGE_SECONDS = 1  # a cache or a browser may keep the document this long: a change reaches it within a second


@require_GET
def node_media(request, node_id: int, token: str):
    """A ready asset's file for a node's cacher; the token, signed with that node's key and expiring, is the authentication."""
    node = Node.objects.filter(pk=node_id).only("media_key").first()
    try:
        if node is None:
            raise signing.BadSignature
        asset_id = asset_id_from_token(token, node=node)
    except signing.BadSignature:  # SignatureExpired included
        raise Http404("Unknown or expired media link.") from None
    asset = MediaAsset.objects.filter(pk=asset_id, status=MediaAsset.Status.READY).exclude(file="").first()
    if asset is None:
        raise Http404("No ready media for this link.")
    try:
        return FileResponse(asset.file.open("rb"), as_attachment=True, filename=asset.file.name.rsplit("/", 1)[-1])
    except FileNotFoundError:
        raise Http404("The media's file is missing from the library.") from None


@require_GET
def public_now_playing(request, slug: str):
    """What a public channel has on air and next, for anyone (``playout.public``): JSON, cacheable for a second,
    conditional on its ETag, readable from any website; limited per client address."""
    refused = too_many_requests(request)
    if refused is not None:
        return refused
    channel = public_channel(slug)
    if channel is None:  # unknown and unpublished channels look alike
        return JsonResponse({"detail": _("No channel publishes its now-playing here.")}, status=404)
    body = json.dumps(channel_listener_view(channel, now=timezone.now())).encode()
    etag = quote_etag(hashlib.sha256(body).hexdigest()[:32])
    response = (HttpResponse(status=304) if etag in parse_etags(request.headers.get("If-None-Match", ""))
                else HttpResponse(body, content_type="application/json"))
    response["ETag"] = etag
    response["Cache-Control"] = f"public, max-age={PUBLIC_MAX_AGE_SECONDS}"
    response["Access-Control-Allow-Origin"] = "*"
    return response


HLS_FILE = re.compile(r"[A-Za-z0-9_-]{1,64}\.(m3u8|ts)")
HLS_TYPES = {"m3u8": "application/vnd.apple.mpegurl", "ts": "video/mp2t"}


@require_GET
def hls(request, channel_id: int, name: str):
    """An HLS output's playlist or segment, for listeners, from the directory its engine writes on the channel's node
    (``playout.outputs.hls``): the web tier serves it where it shares the node's disk (a one-host station)."""
    match = HLS_FILE.fullmatch(name)
    channel = (Channel.objects.filter(pk=channel_id, output_type=Channel.Output.HLS).select_related("node").first()
               if match else None)
    if channel is None or channel.node is None:
        raise Http404(_("No HLS stream here."))
    root = Path(settings.PLAYOUT_CACHE_ROOT).resolve()
    path = (hls_directory(root / channel.node.name, channel.pk) / name).resolve()
    if not path.is_relative_to(root):
        raise Http404(_("No HLS stream here."))
    try:
        response = FileResponse(path.open("rb"), content_type=HLS_TYPES[match[1]])
    except FileNotFoundError:
        raise Http404(_("The stream has no such file now.")) from None
    # a playlist changes with every segment; a segment does not, while it is listed (an engine on another node
    # numbers its own from 1: kept short, so no cache hands out the last node's audio for long)
    response["Cache-Control"] = "no-cache" if match[1] == "m3u8" else "public, max-age=10"
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_GET
def channel_calendar(request, slug: str, channel_slug: str):
    """A channel's shows as a calendar feed (station.calendars), readable as its studio's feeds are."""
    return calendars.serve_part(request, slug, CALENDARS, slug=channel_slug)


def _readable_podcast(request, show_id: int) -> Podcast:
    """The podcast ``request`` may read, or 404 (unknown, or private and no valid token: alike)."""
    podcast = Podcast.objects.select_related("show__channel__studio").filter(show_id=show_id).first()
    if podcast is None or not may_read(request, public=podcast.public, token=podcast.token):
        raise Http404(_("No podcast here."))
    return podcast


@require_GET
def podcast_feed(request, show_id: int):
    """A show's podcast feed (RSS 2.0 with the iTunes tags): public, or with the podcast's token."""
    refused = too_many_requests(request)
    if refused is not None:
        return refused
    response = HttpResponse(podcasts.feed(_readable_podcast(request, show_id), request),
                            content_type="application/rss+xml; charset=utf-8")
    response["Cache-Control"] = "private, max-age=60"
    return response


@require_GET
def podcast_episode_audio(request, show_id: int, guid):
    """An episode's MP3, in byte ranges as podcast apps ask for them; only a published, ready one."""
    podcast = _readable_podcast(request, show_id)
    episode = podcasts.published_episodes(podcast).filter(guid=guid).first()
    if episode is None or not episode.asset.file:
        raise Http404(_("No episode here."))
    return ranged_file(request, Path(episode.asset.file.path), "audio/mpeg")
