"""The shows of a studio's channels in its calendar feeds (station.calendars): a show, or its series, is an event;
its cancelled windows are left out of its series."""

from collections import defaultdict

import icalendar

from playout.models import Channel, Show, ShowInstance
from station.calendars import Source, recent, uid, window_event
from station.models import Studio


def show_events(shows) -> list[icalendar.Event]:
    shows = list(recent(shows.filter(enabled=True)).select_related("channel__studio"))
    cancelled = defaultdict(list)
    for show_id, start_at in ShowInstance.objects.filter(show__in=shows, cancelled=True).values_list("show", "start_at"):
        cancelled[show_id].append(start_at)
    return [window_event(show, uid=uid("show", show.pk), summary=show.name,
                         description=show.description, location=show.channel.name, zone=show.channel.studio.zone,
                         cancelled=cancelled[show.pk]) for show in shows]


def studio_show_events(studio: Studio) -> list[icalendar.Event]:
    return show_events(Show.objects.filter(channel__studio=studio))


def channel_show_events(channel: Channel) -> list[icalendar.Event]:
    return show_events(Show.objects.filter(channel=channel))


SOURCE = Source(events=studio_show_events, related="channels", url_name="calendar-channel",
                key=lambda channel: channel.slug)
