"""The station connects for operators to public addresses only (issue 14, confirmed 6).

Webhooks POSTed anywhere and showed 500 characters of the reply; ingest sources and downloads
fetched any host and followed redirects; webstream checks were unrestricted, and a probe fetched an
internal service's MP3 into studio B's library. Every such connection now goes through
station.outbound: the host is resolved and the socket connects only to an allowed address, redirects
included; OUTBOUND_ALLOWED_NETWORKS admits a station's own internal sources.
"""

import urllib.request
from datetime import timedelta
from urllib.error import HTTPError

import pytest
from django.utils import timezone

from ingest import services as ingest_services
from ingest.media import generate_tone
from ingest.models import Download, IngestSource
from playout.relay import WebstreamRelay
from station import outbound, webhooks
from station.models import EventType, Webhook, WebhookDelivery
from station.tests.factories import member_of
from station.tests.security.servers import Answer, HostileServer

INTERNAL_HOSTS = ["127.0.0.1", "127.1", "2130706433", "0x7f.0.0.1", "017700000001", "localhost", "[::1]",
                  "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[64:ff9b::7f00:1]", "0.0.0.0", "10.0.0.5", "172.16.0.1",
                  "192.168.1.1", "169.254.169.254", "100.64.0.1", "[fe80::1]", "[fd00::1]", "224.0.0.1"]


@pytest.mark.parametrize("address, allowed", [
    ("127.0.0.1", False), ("::1", False), ("::ffff:127.0.0.1", False), ("2002:7f00:1::", False),
    ("64:ff9b::a9fe:a9fe", False), ("2001:0:4136:e378:8000:63bf:80ff:fffe", False), ("169.254.169.254", False),
    ("fe80::1%2", False), ("0.0.0.0", False), ("::", False), ("240.0.0.1", False), ("255.255.255.255", False),
    ("ff02::1", False), ("::7f00:1", False), ("::a00:1", False), ("::ffff:0:7f00:1", False), ("64:ff9b:1::a00:1", False),
    ("fec0::1", False), ("5f00::1", False), ("2001:db8::1", False),
    ("8.8.8.8", True), ("2606:4700::1111", True), ("::ffff:8.8.8.8", True), ("64:ff9b::808:808", True),
])
def test_every_notation_of_an_internal_address_is_refused_and_public_ones_pass(address, allowed):
    assert outbound.address_allowed(address) is allowed


@pytest.mark.parametrize("host", INTERNAL_HOSTS)
def test_internal_hosts_are_refused_after_resolution(host):
    with pytest.raises(Exception) as refused:
        outbound.check_url(f"http://{host}:8000/feed.xml")
    assert getattr(refused.value, "code", "") == "address_not_allowed"


def test_an_allowed_network_admits_its_hosts_only(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    assert outbound.address_allowed("10.20.3.4")
    assert not outbound.address_allowed("10.21.0.1")
    assert not outbound.address_allowed("127.0.0.1")


@pytest.fixture
def internal():
    server = HostileServer("127.0.0.1")
    yield server
    server.close()


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "169.254.169.254", "localhost", "[::ffff:127.0.0.1]"])
def test_the_api_refuses_feeds_lists_and_webstreams_on_internal_hosts(api, operator_b, studio_b, host):
    client = api(operator_b)
    feed = client.post("/api/v1/ingest-sources/", {"studio": studio_b.pk, "name": "Feed", "kind": "feed",
                                                   "url": f"http://{host}:8000/feed.xml"}, format="json")
    listed = client.post("/api/v1/ingest-sources/", {"studio": studio_b.pk, "name": "List", "kind": "url_list",
                                                     "url_list": f"https://stream.example.org/a.mp3\nhttp://{host}/b.mp3"},
                         format="json")
    playlist = client.post("/api/v1/playlists/", {"studio": studio_b.pk, "name": "Relay"}, format="json").json()
    webstream = client.post("/api/v1/playlist-items/", {"playlist": playlist["id"], "webstream_url": f"http://{host}/live",
                                                        "webstream_seconds": 60}, format="json")

    for response, field in ((feed, "url"), (listed, "url_list"), (webstream, "webstream_url")):
        assert response.status_code == 400, response.json()
        assert "internal address" in " ".join(response.json()["error"]["fields"][field])


@pytest.mark.django_db
def test_the_admin_refuses_a_webhook_to_an_internal_host(client, studio_b):
    client.force_login(member_of(studio_b, username="desk_b"))
    response = client.post("/admin/station/webhook/add/", {
        "studio": studio_b.pk, "name": "Probe", "url": "http://169.254.169.254/latest/meta-data/", "secret": "s",
        "event_types": [EventType.ALERT], "enabled": "on"})

    assert response.status_code == 200
    assert "internal address" in str(response.context["adminform"].form.errors["url"])
    assert not Webhook.objects.exists()


@pytest.mark.django_db
def test_a_webhook_written_around_validation_never_reaches_the_internal_host(studio_b, internal):
    url = internal.serve("/admin/", Answer(body=b"internal secrets " * 100))
    hook = Webhook.objects.create(studio=studio_b, name="Probe", url=url, event_types=[EventType.ALERT])
    delivery = WebhookDelivery.objects.create(webhook=hook, event_type=EventType.ALERT, payload={},
                                              status=WebhookDelivery.Status.DELIVERING,
                                              lease_expires_at=timezone.now() + timedelta(minutes=1))

    sent = webhooks.send(WebhookDelivery.objects.select_related("webhook").get(pk=delivery.pk))

    assert internal.hits == []
    assert "internal address" in sent.last_error
    assert sent.attempt_log[-1]["response"] == ""


@pytest.mark.django_db
@pytest.mark.usefixtures("loopback_allowed")
def test_a_receivers_reply_is_kept_as_a_short_line_not_a_page(studio_b, internal):
    url = internal.serve("/hook", Answer(status=500, body=b"<html>\n" + b"stack trace line\n" * 500))
    hook = Webhook.objects.create(studio=studio_b, name="Receiver", url=url, event_types=[EventType.ALERT])
    delivery = WebhookDelivery.objects.create(webhook=hook, event_type=EventType.ALERT, payload={},
                                              status=WebhookDelivery.Status.DELIVERING,
                                              lease_expires_at=timezone.now() + timedelta(minutes=1))

    sent = webhooks.send(WebhookDelivery.objects.select_related("webhook").get(pk=delivery.pk))

    excerpt = sent.attempt_log[-1]["response"]
    assert sent.last_status_code == 500 and len(excerpt) <= 120 and "\n" not in excerpt


@pytest.mark.django_db
def test_a_feed_written_around_validation_is_not_fetched(studio_b, internal):
    url = internal.serve("/feed.xml", Answer(body=b"<rss/>"))
    source = IngestSource.objects.create(studio=studio_b, name="Probe", kind=IngestSource.Kind.FEED, url=url)

    assert ingest_services.source_poll(source=source) == []

    source.refresh_from_db()
    assert internal.hits == [] and "internal address" in source.last_error


@pytest.mark.django_db
def test_a_download_redirected_to_an_internal_host_is_refused_and_leaves_nothing(settings, tmp_path, studio_b, internal):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.2/32"]  # one internal host the station uses, not its neighbours
    allowed = HostileServer("127.0.0.2")
    try:
        mp3 = generate_tone(tmp_path / "private.mp3", frequency=440, seconds=1).read_bytes()
        target = internal.serve("/private.mp3", Answer(body=mp3, headers={"Content-Type": "audio/mpeg"}))
        source = IngestSource.objects.create(studio=studio_b, name="List", kind=IngestSource.Kind.URL_LIST,
                                             url_list=allowed.redirect("/episode.mp3", target))
        download = Download.objects.create(source=source, item_key="1", url=allowed.base + "/episode.mp3")

        ingest_services.download_run(download_id=download.pk)
    finally:
        allowed.close()

    download.refresh_from_db()
    assert download.status == Download.Status.FAILED and "internal address" in download.error_message
    assert internal.hits == [] and download.asset is None
    assert not [path for path in (tmp_path / "media").rglob("*") if path.is_file()]


def test_the_webstream_relay_refuses_an_internal_stream_and_says_why(internal):
    url = internal.serve("/stream", Answer(body=b"\xff\xfb" * 1000, headers={"Content-Type": "audio/mpeg"}))
    relay = WebstreamRelay()
    try:
        with pytest.raises(HTTPError) as refused:
            urllib.request.urlopen(relay.url_for(7, url), timeout=5)
    finally:
        relay.close()

    assert refused.value.code == 502
    assert internal.hits == [] and "internal address" in relay.problem(7)
