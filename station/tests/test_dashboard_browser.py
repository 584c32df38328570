"""The dashboard in Debian's headless Chromium, driven by Playwright, against a real Daphne.

Screenshots land in test-artifacts/ (git-ignored) for a person to look at.
"""

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from playout import services as playout_services
from playout.agent.live import LIVE_INPUT_METER
from playout.models import AsRunEntry, Channel, ShowRecording
from playout.presenters import live_credential_issue
from recorders import services as recorder_services
from station import events
from station.tests.factories import PASSWORD, ChannelFactory, NodeFactory, RecorderFactory, ScheduleFactory, ShowFactory
from station.tests.processes import WebServer, wait_for_other_sessions_to_end

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ARTIFACTS = settings.BASE_DIR / "test-artifacts"
UPDATE_WITHIN_MS = 1000


@pytest.fixture
def web():
    server = WebServer()
    server.start()
    yield server
    if server.process.poll() is None:
        server.process.terminate()
        server.process.wait(10)
    wait_for_other_sessions_to_end()


class Desk:
    """Browser pages logged in as station staff; script errors on any of them fail the test."""

    def __init__(self, chromium, web: WebServer):
        self.chromium, self.web, self.script_errors = chromium, web, []

    def open(self, user, path: str):
        page = self.chromium.new_page(viewport={"width": 1920, "height": 1080})
        page.on("pageerror", lambda error: self.script_errors.append(error))
        page.goto(f"{self.web.url}/admin/login/?next={path}")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        return page


@pytest.fixture
def desk(monkeypatch, web):
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are plain sync code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        staff = Desk(chromium, web)
        yield staff
        chromium.close()
    assert staff.script_errors == []


def _on_air_channel(studio):
    return ChannelFactory(studio=studio, name="FM One", node=NodeFactory(), status=Channel.Status.RUNNING,
                          last_heartbeat_at=timezone.now())


def test_the_dashboard_shows_an_on_air_change_and_a_recorder_start_within_a_second(desk, web, operator_a, studio_a):
    channel = _on_air_channel(studio_a)
    window = ScheduleFactory(recorder=RecorderFactory(studio=studio_a, name="Studio mic"), name="Morning show",
                             start_at=timezone.now() + timedelta(seconds=1), end_at=timezone.now() + timedelta(minutes=5))
    page = desk.open(operator_a, f"/studios/{studio_a.pk}/dashboard/")
    page.screenshot(path=ARTIFACTS / "dashboard-first-paint.png", full_page=True)
    expect(page.locator("#connection")).to_have_text("live", timeout=10000)
    card = page.locator(f'[data-channel="{channel.pk}"]')

    changed = time.monotonic()
    playout_services.channel_on_air(
        channel_id=channel.pk, epoch=channel.lease_epoch, at=timezone.now(), title="Morning News",
        result=AsRunEntry.Result.PLAYED)
    expect(card.locator(".on-air")).to_have_text("Morning News", timeout=UPDATE_WITHIN_MS)
    expect(page.locator("#as-run tbody tr").first).to_contain_text("Morning News", timeout=UPDATE_WITHIN_MS)
    assert time.monotonic() - changed < UPDATE_WITHIN_MS / 1000

    now = timezone.now()
    claimed = recorder_services.schedule_claim(schedule_id=window.pk, owner="test", node=None, now=now)
    recorder_services.recording_started(schedule=claimed, epoch=claimed.lease_epoch, now=now, data_since=now)
    expect(page.locator("[data-recorder]")).to_contain_text("Morning show · running", timeout=UPDATE_WITHIN_MS)
    page.screenshot(path=ARTIFACTS / "dashboard-live.png", full_page=True)


def test_after_the_web_server_dies_and_comes_back_the_page_recovers_by_itself(desk, web, operator_a, studio_a):
    channel = _on_air_channel(studio_a)
    page = desk.open(operator_a, f"/studios/{studio_a.pk}/dashboard/")
    expect(page.locator("#connection")).to_have_text("live", timeout=10000)

    web.kill()
    expect(page.locator("#connection")).to_have_text("reconnecting…", timeout=5000)
    expect(page.locator("body")).to_have_class("stale")
    page.screenshot(path=ARTIFACTS / "dashboard-disconnected.png", full_page=True)
    playout_services.channel_on_air(
        channel_id=channel.pk, epoch=channel.lease_epoch, at=timezone.now(), title="While you were away",
        result=AsRunEntry.Result.PLAYED)
    web.start()

    expect(page.locator("#connection")).to_have_text("live", timeout=10000)
    expect(page.locator(f'[data-channel="{channel.pk}"] .on-air')).to_have_text("While you were away", timeout=2000)
    expect(page.locator("body")).not_to_have_class("stale")


def test_a_member_of_studio_b_sees_nothing_of_studio_a(desk, web, operator_b, studio_a, studio_b):
    _on_air_channel(studio_a)
    page = desk.open(operator_b, f"/studios/{studio_b.pk}/dashboard/")
    expect(page.locator("#connection")).to_have_text("live", timeout=10000)
    assert "FM One" not in page.content()

    close_code = page.evaluate("""studio => new Promise(resolve => {
        const socket = new WebSocket(`ws://${location.host}/ws/studios/${studio}/`);
        socket.onclose = event => resolve(event.code);
    })""", studio_a.pk)
    assert 4400 <= close_code < 4500
    assert page.goto(f"{web.url}/studios/{studio_a.pk}/dashboard/").status == 404
    assert page.goto(f"{web.url}/studios/{studio_a.pk}/snapshot.json").status == 404


def test_the_dashboard_shows_who_is_live_since_when_and_their_input_level(desk, web, operator_a, studio_a):
    channel = _on_air_channel(studio_a)
    credential, _ = live_credential_issue(show=ShowFactory(channel=channel, name="Morning Live"), presenter="Ada")
    page = desk.open(operator_a, f"/studios/{studio_a.pk}/dashboard/")
    expect(page.locator("#connection")).to_have_text("live", timeout=10000)
    card = page.locator(f'[data-channel="{channel.pk}"]')
    # readings are not caught up on: the page follows the studio once an event reaches it
    playout_services.channel_on_air(channel_id=channel.pk, epoch=channel.lease_epoch, at=timezone.now(),
                                    title="Filler", result=AsRunEntry.Result.FALLBACK)
    expect(card.locator(".on-air")).to_have_text("Filler", timeout=UPDATE_WITHIN_MS)

    # connected before the slot, checking their sound: the level, not yet on air
    events.publish_meter(studio_id=studio_a.pk, type=LIVE_INPUT_METER,
                         payload={"channel": channel.pk, "presenter": "Ada", "level_dbfs": -14.2})
    expect(card.locator(".live-input")).to_contain_text("Ada connected · input -14 dBFS", timeout=UPDATE_WITHIN_MS)
    expect(card.locator(".live-input meter")).to_have_attribute("value", "-14.2")
    expect(card.locator(".live")).to_have_count(0)

    playout_services.channel_on_air(channel_id=channel.pk, epoch=channel.lease_epoch, at=timezone.now(),
                                    title="Morning Live", result=AsRunEntry.Result.LIVE, live_credential=credential)
    expect(card.locator(".live")).to_contain_text("LIVE · Ada · since", timeout=UPDATE_WITHIN_MS)
    expect(card.locator(".elapsed")).to_be_visible()
    ShowRecording.objects.create(show=credential.show, channel=channel, slot_start=timezone.now() - timedelta(minutes=2),
                                 slot_end=timezone.now() + timedelta(minutes=58), node=channel.node)
    playout_services.channel_announce(channel)  # as the agent does when it begins recording the show from the air
    expect(card.locator(".recording")).to_contain_text("REC Morning Live · elapsed 2:0", timeout=UPDATE_WITHIN_MS)
    page.screenshot(path=ARTIFACTS / "dashboard-presenter-live.png", full_page=True)

    events.publish_meter(studio_id=studio_a.pk, type=LIVE_INPUT_METER,
                         payload={"channel": channel.pk, "presenter": None, "level_dbfs": None})
    expect(card.locator(".live-input")).to_have_count(0, timeout=UPDATE_WITHIN_MS)
