"""The shows of a studio's channels in its calendar feeds (station.calendars): a show, or its series, is an event;
its cancelled windows are left out of its series."""

from collections import defaultdict

import icalendar

from playout.models import Show, ShowInstance
from station.calendars import Source, recent, uid, window_event


def show_events(shows) -> list[icalendar.Event]:
    shows = list(recent(shows.filter(enabled=True)).select_related("channel__studio"))
    cancelled = defaultdict(list)
    for show_id, start_at in ShowInstance.objects.filter(show__in=shows, cancelled=True).values_list("show", "start_at"):
        cancelled[show_id].append(start_at)
    return [window_event(show, uid=uid("show", show.pk), summary=show.name,
                         description=show.description, location=show.channel.name, zone=show.channel.studio.zone,
                         cancelled=cancelled[show.pk]) for show in shows]


SOURCE = Source(windows=Show, part="channel", events=show_events, url_name="calendar-channel",
                key=lambda channel: channel.slug)
