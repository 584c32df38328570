"""Listing the items of an ingest source: RSS/Atom enclosures (feedparser) or a plain URL list."""

import hashlib
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

import feedparser
import requests
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from ingest.fetch import USER_AGENT
from ingest.models import MAX_LISTED_URLS, Download, IngestSource, is_http_url
from station import outbound
from station.errors import UserError

FEED_MAX_BYTES = 20 * 2**20  # a podcast feed with years of episodes is a few MB
FEED_SECONDS = 120  # to read a whole feed


MAX_ITEMS = MAX_LISTED_URLS  # the newest items one poll takes: a feed's whole back catalogue is not queued at once
URL_MAX_LENGTH = Download._meta.get_field("url").max_length
KEY_MAX_LENGTH = Download._meta.get_field("item_key").max_length


@dataclass(frozen=True)
class Item:
    key: str  # identity within its source: the entry's GUID, else its media URL
    url: str
    title: str


@dataclass(frozen=True)
class Listing:
    items: list[Item]  # oldest first, without duplicates
    left_out: str = ""  # what the source offers that this poll does not take, and why; empty if nothing


def title_from_url(url: str) -> str:
    return unquote(PurePosixPath(urlsplit(url).path).name) or url


def item_key(identity: str) -> str:
    """An item's identity as stored: itself, or a digest of it where it is longer than the column holds."""
    if len(identity) <= KEY_MAX_LENGTH:
        return identity
    return "sha256:" + hashlib.sha256(identity.encode()).hexdigest()


def list_items(source: IngestSource) -> Listing:
    """The media items a source offers now, oldest first, without duplicates, the newest MAX_ITEMS of them."""
    if source.kind == IngestSource.Kind.URL_LIST:
        items = [Item(key=item_key(url), url=url, title=title_from_url(url)[:300]) for url in _http_urls(source)]
    else:
        items = _feed_items(source.url, _get_feed(source.url))
    unique = {}
    for item in items:
        unique.setdefault(item.key, item)
    usable = [item for item in unique.values() if len(item.url) <= URL_MAX_LENGTH]
    notes = []
    if len(usable) < len(unique):
        notes.append(_("%(count)d items were left out: their URLs are longer than %(max)d characters.")
                     % {"count": len(unique) - len(usable), "max": URL_MAX_LENGTH})
    if len(usable) > MAX_ITEMS:
        notes.append(_("Only the newest %(max)d of its %(count)d items are taken.")
                     % {"max": MAX_ITEMS, "count": len(usable)})
    return Listing(items=usable[-MAX_ITEMS:], left_out=" ".join(str(note) for note in notes))


def _http_urls(source: IngestSource) -> list[str]:
    """The list's URLs; a row saved before validation (or by a raw write) still can't send us off http(s)."""
    urls = source.listed_urls()
    bad = [url for url in urls if not is_http_url(url)]
    if bad:
        raise UserError("bad_url", _("Only http(s) URLs can be downloaded: %(url)s"), {"url": bad[0]})
    return urls


def _get_feed(url: str) -> bytes:
    try:
        with outbound.guarded_session(user_agent=USER_AGENT) as session, session.get(
                url, stream=True, timeout=(settings.INGEST_CONNECT_TIMEOUT_SECONDS, settings.INGEST_READ_TIMEOUT_SECONDS)
        ) as response:
            if response.status_code >= 400:
                raise UserError("feed_http_error", _("The feed %(url)s answered HTTP %(status)d %(reason)s."),
                                {"url": url, "status": response.status_code, "reason": response.reason})
            body, deadline = b"", time.monotonic() + FEED_SECONDS
            for chunk in response.iter_content(1 << 16):
                body += chunk
                if len(body) > FEED_MAX_BYTES:
                    raise UserError("feed_too_large", _("The feed %(url)s is larger than %(limit)d MB."),
                                    {"url": url, "limit": FEED_MAX_BYTES // 2**20})
                if time.monotonic() > deadline:  # a feed that drips must not hold a poller for hours
                    raise UserError("feed_too_slow", _("The feed %(url)s took longer than %(seconds)d s to read."),
                                    {"url": url, "seconds": FEED_SECONDS})
            return body
    except requests.RequestException as error:
        raise UserError("feed_unreachable", _("Could not read the feed %(url)s: %(reason)s"),
                        {"url": url, "reason": type(error).__name__}, inner=error) from error


def _feed_items(url: str, body: bytes) -> list[Item]:
    parsed = feedparser.parse(body)
    if parsed.bozo and not parsed.entries:
        raise UserError("bad_feed", _("%(url)s is not an RSS or Atom feed: %(reason)s"),
                        {"url": url, "reason": parsed.get("bozo_exception", "")}, inner=parsed.get("bozo_exception"))
    items = []
    for entry in reversed(parsed.entries):  # feeds list the newest first; download in the order published
        enclosure = next((e for e in entry.get("enclosures", []) if is_http_url(e.get("href", ""))), None)
        if enclosure is None:
            continue  # a text-only post: nothing to download
        items.append(Item(key=item_key(entry.get("id") or enclosure["href"]), url=enclosure["href"],
                          title=(entry.get("title") or title_from_url(enclosure["href"]))[:300]))
    return items
