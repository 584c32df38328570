"""Calendar feeds (station.calendars), read as calendar apps read them: parsed by the icalendar package, their rules
expanded by dateutil from what the feed says, in the zone it names."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from dateutil.rrule import rrulestr
from django.urls import reverse

from playout.models import ShowInstance
from recorders.models import RecorderSchedule
from recorders.services.schedules import schedule_queue_next
from station import recurrence, services
from station.tests.factories import (ChannelFactory, RecorderFactory, ScheduleFactory, ShowFactory, StudioFactory,
                                     member_of)

pytestmark = pytest.mark.django_db
LONDON, NEW_YORK = ZoneInfo("Europe/London"), ZoneInfo("America/New_York")


def _feed(client, url: str, **query) -> icalendar.Calendar:
    response = client.get(url, query)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    return icalendar.Calendar.from_ical(response.content)


def _event(calendar: icalendar.Calendar, summary: str) -> icalendar.Event:
    return next(event for event in calendar.walk("VEVENT") if str(event["SUMMARY"]) == summary)


def _windows(event: icalendar.Event, count: int) -> list[datetime]:
    """The window starts a calendar app shows for the event: its rule from its DTSTART, less its EXDATEs."""
    start = event.decoded("DTSTART")
    rule = rrulestr(event["RRULE"].to_ical().decode(), dtstart=start)
    excluded = {moment.dt for exdate in _as_list(event.get("EXDATE")) for moment in exdate.dts}
    return [moment for moment in rule[:count + len(excluded)] if moment not in excluded][:count]


def _as_list(value) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


def test_a_weekly_show_keeps_its_local_time_across_the_clock_change_with_its_skipped_and_cancelled_weeks(client):
    studio = StudioFactory(time_zone="Europe/London", calendar_public=True)
    channel = ChannelFactory(studio=studio, name="Main")
    first = datetime(2027, 3, 22, 7, 0, tzinfo=LONDON)  # the clocks go forward on Sunday 28 March 2027
    show = ShowFactory(channel=channel, name="Breakfast", description="Wake up, the news", start_at=first,
                       end_at=first + timedelta(hours=2), recurrence=recurrence.Recurrence.WEEKLY,
                       skip_dates=[date(2027, 4, 5)])
    ShowInstance.objects.create(show=show, channel=channel, start_at=datetime(2027, 4, 12, 6, 0, tzinfo=UTC),
                                end_at=datetime(2027, 4, 12, 8, 0, tzinfo=UTC), cancelled=True)

    calendar = _feed(client, reverse("calendar-studio", args=[studio.slug]))

    event = _event(calendar, "Breakfast")
    assert event["DTSTART"].params["TZID"] == "Europe/London"
    assert [zone["TZID"] for zone in calendar.walk("VTIMEZONE")] == ["Europe/London"]
    assert str(event["DESCRIPTION"]) == "Wake up, the news" and str(event["LOCATION"]) == "Main"
    assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(hours=2)
    shown = _windows(event, 5)
    assert [moment.astimezone(UTC) for moment in shown] == [
        datetime(2027, 3, 22, 7, tzinfo=UTC),  # GMT
        datetime(2027, 3, 29, 6, tzinfo=UTC),  # BST: still 07:00 on the studio's clock
        datetime(2027, 4, 19, 6, tzinfo=UTC),  # 5 April skipped, 12 April cancelled
        datetime(2027, 4, 26, 6, tzinfo=UTC),
        datetime(2027, 5, 3, 6, tzinfo=UTC),
    ]
    # what the station itself plays, with the same skipped day
    played = [start for start, _ in recurrence.occurrences(
        start_at=first, end_at=first + timedelta(hours=2), recurrence="weekly", zone=LONDON,
        skip_dates=[date(2027, 4, 5), date(2027, 4, 12)], limit=5)]
    assert [moment.astimezone(UTC) for moment in shown] == played


def _hour_long_show_event(client, first: datetime, rule: str):
    """The event of an hour-long show from ``first`` (in its studio's zone) by custom rule ``rule``, as the studio's
    feed has it."""
    studio = StudioFactory(time_zone=first.tzinfo.key, calendar_public=True)
    ShowFactory(channel=ChannelFactory(studio=studio), name="Ruled", start_at=first,
                end_at=first + timedelta(hours=1), recurrence=recurrence.Recurrence.RRULE, rrule=rule)
    return _event(_feed(client, reverse("calendar-studio", args=[studio.slug])), "Ruled")


def test_a_rules_local_until_is_written_in_utc_as_rfc_5545_asks_beside_a_local_start(client):
    event = _hour_long_show_event(client, datetime(2027, 3, 26, 7, 0, tzinfo=LONDON),
                                  "FREQ=DAILY;UNTIL=20270330T070000")

    assert event["RRULE"]["UNTIL"] == [datetime(2027, 3, 30, 6, 0, tzinfo=UTC)]  # 07:00 BST
    assert [moment.day for moment in _windows(event, 10)] == [26, 27, 28, 29, 30]


def test_rfc_5545s_example_every_other_week_on_mon_wed_fri_gives_the_rfcs_dates(client):
    """RFC 5545, 3.8.5.3: "Every other week on Monday, Wednesday, and Friday until December 24, 1997, starting on
    Monday, September 1, 1997", 28 years on (the same weekdays, within the station's years)."""
    event = _hour_long_show_event(client, datetime(2025, 9, 1, 9, 0, tzinfo=NEW_YORK),
                                  "FREQ=WEEKLY;INTERVAL=2;UNTIL=20251224T000000Z;WKST=SU;BYDAY=MO,WE,FR")

    shown = _windows(event, 100)
    assert {moment.astimezone(NEW_YORK).time() for moment in shown} == {time(9, 0)}  # EDT, then EST
    assert [(moment.month, moment.day) for moment in shown] == [
        (9, 1), (9, 3), (9, 5), (9, 15), (9, 17), (9, 19), (9, 29), (10, 1), (10, 3), (10, 13), (10, 15), (10, 17),
        (10, 27), (10, 29), (10, 31), (11, 10), (11, 12), (11, 14), (11, 24), (11, 26), (11, 28), (12, 8), (12, 10),
        (12, 12), (12, 22)]


def test_a_recorders_feed_has_its_series_once_and_its_one_off_windows_and_leaves_cancelled_and_old_ones_out(client):
    studio = StudioFactory(time_zone="Europe/London", calendar_public=True)
    recorder = RecorderFactory(studio=studio, name="Studio A mic")
    first = datetime(2027, 6, 1, 18, 0, tzinfo=LONDON)
    earlier = ScheduleFactory(recorder=recorder, name="Evening", start_at=first, end_at=first + timedelta(hours=1),
                              recurrence=recurrence.Recurrence.DAILY)
    schedule_queue_next(schedule=earlier)  # the series' next window, queued after this one
    interview = ScheduleFactory(recorder=recorder, name="Interview", start_at=datetime(2027, 6, 3, 10, tzinfo=LONDON),
                                end_at=datetime(2027, 6, 3, 11, tzinfo=LONDON))
    # started 10 minutes early by a service, which moves the window and not its anchor ("start now")
    RecorderSchedule.objects.filter(pk=interview.pk).update(start_at=datetime(2027, 6, 3, 9, 50, tzinfo=LONDON))
    ScheduleFactory(recorder=recorder, name="Called off", start_at=datetime(2027, 6, 4, 10, tzinfo=LONDON),
                    end_at=datetime(2027, 6, 4, 11, tzinfo=LONDON), status=RecorderSchedule.Status.CANCELLED)
    long_ago = datetime.now(tz=UTC) - timedelta(days=800)
    ScheduleFactory(recorder=recorder, name="Long ago", start_at=long_ago, end_at=long_ago + timedelta(hours=1),
                    status=RecorderSchedule.Status.COMPLETED)
    assert RecorderSchedule.objects.filter(name="Evening").count() == 2

    calendar = _feed(client, reverse("calendar-recorder", args=[studio.slug, recorder.pk]))

    assert sorted(str(event["SUMMARY"]) for event in calendar.walk("VEVENT")) == ["Evening", "Interview"]
    evening = _event(calendar, "Evening")
    assert evening.decoded("DTSTART") == first  # the series' first window, whichever of its windows is newest
    assert [moment.day for moment in _windows(evening, 3)] == [1, 2, 3]
    assert "RRULE" not in _event(calendar, "Interview") and str(_event(calendar, "Interview")["LOCATION"]) == "Studio A mic"
    assert _event(calendar, "Interview").decoded("DTSTART") == datetime(2027, 6, 3, 9, 50, tzinfo=LONDON)


def test_text_staff_write_reaches_the_calendar_as_written(client):
    studio = StudioFactory(calendar_public=True)
    name = 'News, sport; "Late" \\ and a line\nbreak'
    ShowFactory(channel=ChannelFactory(studio=studio), name=name, description="Ünïcode — ok")

    [event] = _feed(client, reverse("calendar-studio", args=[studio.slug])).walk("VEVENT")

    assert str(event["SUMMARY"]) == name and str(event["DESCRIPTION"]) == "Ünïcode — ok"


def test_private_feeds_are_read_only_with_the_studios_token_and_a_new_token_retires_the_old(client):
    studio, other = StudioFactory(), StudioFactory()
    channel = ChannelFactory(studio=studio)
    recorder = RecorderFactory(studio=studio)
    feeds = [reverse("calendar-studio", args=[studio.slug]),
             reverse("calendar-channel", args=[studio.slug, channel.slug]),
             reverse("calendar-recorder", args=[studio.slug, recorder.pk])]
    for url in feeds:
        for query in ({}, {"token": "guess"}, {"token": other.calendar_token}, {"token": ""}):
            assert client.get(url, query).status_code == 404, (url, query)  # alike an unknown feed
        _feed(client, url, token=studio.calendar_token)
    # another studio's channel and recorder are not this studio's, whatever the token
    assert client.get(reverse("calendar-channel", args=[other.slug, channel.slug]),
                      {"token": other.calendar_token}).status_code == 404
    assert client.get(reverse("calendar-recorder", args=[other.slug, recorder.pk]),
                      {"token": other.calendar_token}).status_code == 404

    old = studio.calendar_token
    new = services.studio_new_calendar_token(studio=studio)
    assert client.get(feeds[0], {"token": old}).status_code == 404
    _feed(client, feeds[0], token=new)
    assert old != new and len(new) >= 40 and other.calendar_token != new


def test_the_admin_hands_out_every_feed_of_the_studio_with_its_token(admin_client):
    studio = StudioFactory(slug="north")
    ChannelFactory(studio=studio, name="Main", slug="main")
    recorder = RecorderFactory(studio=studio, name="Mic")

    page = admin_client.get(reverse("admin:station_studio_change", args=[studio.pk])).content.decode()

    for path in ("/calendars/north.ics", "/calendars/north/channels/main.ics",
                 f"/calendars/north/recorders/{recorder.pk}.ics"):
        assert f"{path}?token={studio.calendar_token}" in page


def test_feeds_are_limited_per_address_like_the_other_public_addresses(client, settings):
    settings.PUBLIC_REQUESTS_PER_MINUTE = 2
    studio = StudioFactory(calendar_public=True)
    url = reverse("calendar-studio", args=[studio.slug])
    address = {"REMOTE_ADDR": "198.51.100.7"}

    assert [client.get(url, **address).status_code for _ in range(3)] == [200, 200, 429]
    assert int(client.get(url, **address)["Retry-After"]) > 0
    assert client.get(url, REMOTE_ADDR="198.51.100.8").status_code == 200


def test_the_api_hands_out_the_feeds_to_the_studios_members_and_sets_them_public(client):
    studio = StudioFactory(slug="south")
    ChannelFactory(studio=studio, name="Main", slug="main")
    member = member_of(studio, username="editor")
    client.force_login(member)
    url = f"/api/v1/studios/{studio.pk}/"

    feeds = client.get(url).json()["calendar_feeds"]
    assert [feed["name"] for feed in feeds] == [studio.name, "Main"]
    assert feeds[1]["url"].endswith(f"/calendars/south/channels/main.ics?token={studio.calendar_token}")

    assert client.patch(url, {"calendar_public": True}, content_type="application/json").status_code == 200
    assert client.get(url).json()["calendar_feeds"][0]["url"].endswith("/calendars/south.ics")
    _feed(client, reverse("calendar-studio", args=["south"]))
