"""Calendar feeds (iCalendar, RFC 5545) of a studio's schedules, for calendar apps.

A recurring window (``station.models.RecurringWindow``: a show, a recording series) is one event:
its series' first window in the studio's time zone (``DTSTART;TZID=…``, the zone's ``VTIMEZONE``
beside it), its rule, and its skip dates and cancelled windows as ``EXDATE``. Calendar apps then
show each window at its local time across clock changes, as the station plays and records it:
RFC 5545 reads a local time in a spring-forward gap with the offset before the gap, and an
ambiguous one as its first instance, which is what ``station.recurrence`` does. The feeds are
written with the ``icalendar`` package.

Who may read them: a studio's feeds are public when it says so, otherwise read with its calendar
token in the address (``?token=``); a wrong or missing token looks like an unknown feed. Every
request counts against the per-address limit of the public addresses (``station.ratelimit``).

Each app adds its windows to the studio's whole feed by registering a source (``register_source``,
from its AppConfig): the kernel imports no app.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar
from django.conf import settings
from django.db import models
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from station import recurrence
from station.feed_access import handed_out, may_read
from station.models import Studio
from station.ratelimit import too_many_requests

PRODUCT = "-//Stationkeeper//Schedules//EN"
REFRESH = timedelta(minutes=15)  # how often a calendar app is asked to fetch the feed again
TIMEZONE_YEARS = 10  # a feed's VTIMEZONE covers this many years ahead; it is fetched again long before
HISTORY = timedelta(days=366)  # one-off windows that ended longer ago are left out of the feeds


def recent(windows):
    """The windows a feed shows: every series, and the one-off windows that ended within HISTORY or are to come."""
    return windows.exclude(recurrence=recurrence.Recurrence.NONE, end_at__lt=timezone.now() - HISTORY)


@dataclass(frozen=True)
class Source:
    """An app's part of a studio's calendars: its windows (a model's rows) written as events by ``events``, in the
    studio's whole feed and in a feed for each of the studio's things they belong to by their ``part`` field (a
    channel, a recorder: each at URL ``url_name`` by its ``key``)."""

    windows: type[models.Model]
    part: str
    events: Callable[[models.QuerySet], Iterable[icalendar.Event]]
    url_name: str
    key: Callable[[object], object]

    def studio_events(self, studio: Studio) -> Iterable[icalendar.Event]:
        return self.events(self.windows.objects.filter(**{f"{self.part}__studio": studio}))

    def part_events(self, part) -> Iterable[icalendar.Event]:
        return self.events(self.windows.objects.filter(**{self.part: part}))

    @property
    def part_model(self) -> type[models.Model]:
        return self.windows._meta.get_field(self.part).related_model

    @property
    def related(self) -> str:
        """The studio's accessor of its parts (``channels``), read along for a list of studios (``prefetch_feeds``)."""
        return self.part_model._meta.get_field("studio").remote_field.get_accessor_name()

    def feeds(self, studio: Studio) -> list[tuple[str, str]]:
        return [(part.name, reverse(self.url_name, args=[studio.slug, self.key(part)]))
                for part in sorted(getattr(studio, self.related).all(), key=lambda part: part.name)]


_sources: list[Source] = []


def register_source(source: Source) -> None:
    if source not in _sources:
        _sources.append(source)


def studio_events(studio: Studio) -> list[icalendar.Event]:
    return [event for source in _sources for event in source.studio_events(studio)]


def prefetch_feeds(studios):
    """Studios with what their feeds' addresses need read along (a list of studios reads it in one query each)."""
    return studios.prefetch_related(*(source.related for source in _sources))


def studio_feed_urls(studio: Studio) -> list[tuple[str, str]]:
    """Every feed of the studio, by name, at the address it is handed out with (``feed_url``)."""
    feeds = [(studio.name, reverse("calendar-studio", args=[studio.slug]))]
    feeds += [feed for source in _sources for feed in source.feeds(studio)]
    return [(name, feed_url(studio, path)) for name, path in feeds]


def uid(kind: str, key) -> str:
    """An event's lasting identity: its kind and key, at the station's host."""
    return f"{kind}-{key}@{urlsplit(settings.STATION_URL).hostname or 'stationkeeper'}"


def window_event(window, *, uid: str, summary: str, description: str = "", location: str = "", zone: ZoneInfo,
                 cancelled: Iterable[datetime] = ()) -> icalendar.Event:
    """The event of a window, or of its series: the series' first window, its rule, and the windows it leaves out
    (its skip dates, and ``cancelled`` window starts)."""
    if window.recurrence == recurrence.Recurrence.NONE:  # the window as it is (a service may have moved it, as
        first_start, first_end = window.start_at, window.end_at  # "start now" does, without moving its anchor)
    else:
        first_start, first_end = window.series_start_at or window.start_at, window.series_end_at or window.end_at
    local_start, local_end = first_start.astimezone(zone), first_end.astimezone(zone)
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", timezone.now())
    event.add("summary", summary)
    if description:
        event.add("description", description)
    if location:
        event.add("location", location)
    event.add("dtstart", local_start)
    event.add("dtend", local_end)
    if window.recurrence != recurrence.Recurrence.NONE:
        event.add("rrule", _rule(window, local_start, zone))
        skipped = [local_start.replace(year=day.year, month=day.month, day=day.day) for day in window.skip_dates]
        left_out = sorted({*skipped, *(instant.astimezone(zone) for instant in cancelled)})
        if left_out:
            event.add("exdate", left_out)
    return event


def _rule(window, local_start: datetime, zone: ZoneInfo) -> icalendar.vRecur:
    """The window's rule as RFC 5545 writes it beside a local DTSTART: an UNTIL in UTC."""
    text = recurrence.rfc_rule(window.recurrence, window.rrule)
    rule = icalendar.vRecur.from_ical(text)
    if "UNTIL" in rule:
        until = rule["UNTIL"][0]
        if isinstance(until, datetime) and until.tzinfo is None:  # a local time, as the station reads it
            rule["UNTIL"] = [recurrence.to_utc(until, zone)]
    return rule


def feed(name: str, events: Iterable[icalendar.Event]) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODUCT)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    events = list(events)
    for event in events:
        calendar.add_component(event)
    # each zone's rules from the first event's year to TIMEZONE_YEARS past the later of today and the last first
    # window (the library's default stops at 2038)
    starts = [event.decoded("dtstart").date() for event in events] or [timezone.now().date()]
    last = max(max(starts), timezone.now().date())
    calendar.add_missing_timezones(first_date=min(starts).replace(month=1, day=1),
                                   last_date=last.replace(year=last.year + TIMEZONE_YEARS, month=1, day=1))
    return calendar.to_ical()


def serve(request, studio_slug: str, describe: Callable[[Studio], tuple[str, Iterable[icalendar.Event]]]) -> HttpResponse:
    """A feed of the studio named in the address, for a request that may read it: ``describe(studio)`` gives the
    calendar's name and its events (raising Http404 for what the studio doesn't have)."""
    refused = too_many_requests(request)
    if refused is not None:
        return refused
    name, events = describe(readable_studio(request, studio_slug))
    response = HttpResponse(feed(name, events), content_type="text/calendar; charset=utf-8")
    response["Cache-Control"] = "private, max-age=60"
    return response


def serve_part(request, studio_slug: str, source: Source, **lookup) -> HttpResponse:
    """The feed of one of the studio's things (a channel, a recorder: the source's part found by ``lookup``), its
    windows' events; 404 for another studio's."""
    def describe(studio: Studio):
        part = get_object_or_404(source.part_model, studio=studio, **lookup)
        return f"{studio.name}: {part.name}", source.part_events(part)

    return serve(request, studio_slug, describe)


def readable_studio(request, slug: str) -> Studio:
    """The studio whose feed ``request`` may read, or 404 (unknown, or private and no valid token: alike)."""
    studio = Studio.objects.filter(slug=slug).first()
    if studio is None or not may_read(request, public=studio.calendar_public, token=studio.calendar_token):
        raise Http404(_("No calendar here."))
    return studio


def feed_url(studio: Studio, path: str) -> str:
    """A feed's address as the studio hands it out: with its token unless the studio's feeds are public."""
    return handed_out(settings.STATION_URL.rstrip("/") + path, public=studio.calendar_public,
                      token=studio.calendar_token)
