"""Listing the items of an ingest source: RSS/Atom enclosures (feedparser) or a plain URL list."""

import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

import feedparser
import requests
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from ingest.fetch import USER_AGENT
from ingest.models import IngestSource, is_http_url
from station import outbound
from station.errors import UserError

FEED_MAX_BYTES = 20 * 2**20  # a podcast feed with years of episodes is a few MB
FEED_SECONDS = 120  # to read a whole feed


@dataclass(frozen=True)
class Item:
    key: str  # identity within its source: the entry's GUID, else its media URL
    url: str
    title: str


def title_from_url(url: str) -> str:
    return unquote(PurePosixPath(urlsplit(url).path).name) or url


def list_items(source: IngestSource) -> list[Item]:
    """The media items a source offers now, oldest first, without duplicates."""
    if source.kind == IngestSource.Kind.URL_LIST:
        items = [Item(key=url, url=url, title=title_from_url(url)) for url in _http_urls(source)]
    else:
        items = _feed_items(source.url, _get_feed(source.url))
    unique = {}
    for item in items:
        unique.setdefault(item.key, item)
    return list(unique.values())


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
        items.append(Item(key=(entry.get("id") or enclosure["href"])[:500], url=enclosure["href"],
                          title=(entry.get("title") or title_from_url(enclosure["href"]))[:300]))
    return items
