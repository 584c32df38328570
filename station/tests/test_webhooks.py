"""Outgoing webhooks against a real HTTP receiver: signature, subscriptions, retries with backoff, the log."""

import hashlib
import hmac
import json
from datetime import datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from station import events, services, webhooks
from station.models import EventType, Webhook, WebhookDelivery
from station.tests.concurrency import run_together
from station.tests.factories import member_of
from station.tests.http_servers import QuietHandler, serve_in_background

pytestmark = pytest.mark.usefixtures("loopback_allowed")  # receivers listen on this machine


class Receiver:
    """A local HTTP endpoint that records what it gets and answers with the statuses it is given."""

    def __init__(self, statuses=(), content_type="text/plain"):
        self.received, self.statuses = [], list(statuses)
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.end_headers()
                self.wfile.write(b"thanks" if status < 300 else b"not now")

        self.server = serve_in_background(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def _hook(studio, url, types=(EventType.ALERT,), **fields) -> Webhook:
    return Webhook.objects.create(studio=studio, name=fields.pop("name", f"Hook {Webhook.objects.count()}"), url=url,
                                  event_types=list(types), **fields)


def _due_now():
    return timezone.now() + timedelta(hours=2)  # past any backoff


@pytest.mark.django_db(transaction=True)
def test_a_delivery_is_signed_with_the_webhooks_secret(studio_a, receiver):
    hook = _hook(studio_a, receiver.url)

    alert = services.alert_raise(studio=studio_a, code="media_missing", message="A file is missing.", subject="a.mp3")
    assert webhooks.deliver_due() == 1

    headers, body = receiver.received[0]
    expected = hmac.new(hook.secret.encode(), headers["X-Stationkeeper-Timestamp"].encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    assert headers["X-Stationkeeper-Signature"] == f"sha256={expected}"
    assert headers["X-Stationkeeper-Event"] == "station.alert"
    sent = json.loads(body)
    assert (sent["event"], sent["studio"], sent["payload"]["id"]) == ("station.alert", studio_a.pk, alert.pk)
    assert sent["seq"] == events.latest_seq()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert delivery.attempt_log[0]["response"] == "thanks"


@pytest.mark.django_db(transaction=True)
def test_only_the_studios_webhooks_for_that_event_get_it(studio_a, studio_b, receiver):
    follows = _hook(studio_a, receiver.url, name="Alerts")
    _hook(studio_a, receiver.url, types=[EventType.ON_AIR], name="On air only")
    _hook(studio_a, receiver.url, name="Disabled", enabled=False)
    _hook(studio_b, receiver.url, name="Other studio")

    services.alert_raise(studio=studio_a, code="late", message="Late.")

    assert list(WebhookDelivery.objects.values_list("webhook", flat=True)) == [follows.pk]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_sends_nothing(studio_a, receiver):
    _hook(studio_a, receiver.url)

    with pytest.raises(RuntimeError), transaction.atomic():
        services.alert_raise(studio=studio_a, code="late", message="Late.")
        raise RuntimeError("the change fails")

    assert not WebhookDelivery.objects.exists()
    assert webhooks.deliver_due() == 0


@pytest.mark.django_db
def test_an_event_goes_out_by_its_declared_name_and_an_undeclared_one_is_refused(studio_a,
                                                                                   django_capture_on_commit_callbacks):
    received = []
    unsubscribe = events.subscribe(received.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            events.publish(studio_id=studio_a.pk, type=EventType.TEST, payload={})
        with pytest.raises(ValueError):
            events.publish(studio_id=studio_a.pk, type="station.tset", payload={})
    finally:
        unsubscribe()
    assert [(e["type"], type(e["type"])) for e in received] == [("station.test", str)]


@pytest.mark.django_db(transaction=True)
def test_a_refused_delivery_is_retried_with_backoff_then_succeeds(studio_a):
    receiver = Receiver(statuses=[500])
    try:
        _hook(studio_a, receiver.url)
        services.alert_raise(studio=studio_a, code="late", message="Late.")

        webhooks.deliver_due()
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
            "pending", 1, 500, "HTTP 500")
        wait = delivery.next_attempt_at - timezone.now()
        assert timedelta(seconds=8) < wait <= timedelta(seconds=11)
        assert webhooks.deliver_due() == 0  # not before its time

        webhooks.deliver_due(now=_due_now())
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == ("succeeded", 2)
        assert [entry["status_code"] for entry in delivery.attempt_log] == [500, 200]
        assert len(receiver.received) == 2
    finally:
        receiver.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("charset", ["utf8mb4", "binary", "x-user-defined"])
def test_a_reply_in_a_charset_python_does_not_know_still_counts_and_is_not_sent_again(studio_a, charset):
    receiver = Receiver(content_type=f"text/plain; charset={charset}")
    try:
        _hook(studio_a, receiver.url)
        services.alert_raise(studio=studio_a, code="late", message="Late.")

        for minutes in (0, 2, 4):  # each pass after the claim would have lapsed
            webhooks.deliver_due(now=timezone.now() + timedelta(minutes=minutes))

        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempts, delivery.attempt_log[0]["response"]) == ("succeeded", 1, "thanks")
        assert len(receiver.received) == 1
    finally:
        receiver.close()


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_receiver_is_logged_and_fails_after_the_last_attempt(studio_a, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    _hook(studio_a, "http://127.0.0.1:9/hook")  # nothing listens on the discard port
    services.alert_raise(studio=studio_a, code="late", message="Late.")

    waits = []
    for _attempt in range(3):
        webhooks.deliver_due(now=_due_now())
        delivery = WebhookDelivery.objects.get()
        waits.append((delivery.next_attempt_at - datetime.fromisoformat(delivery.attempt_log[-1]["at"])).total_seconds())
    assert delivery.status == "failed" and delivery.attempts == 3
    assert "ConnectionError" in delivery.last_error
    assert all(entry["status_code"] is None for entry in delivery.attempt_log)
    assert 10 <= waits[0] <= 11.5 and 20 <= waits[1] <= 23  # the wait doubles

    webhooks.retry_now(delivery)  # by hand, from the admin: one more attempt
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 2)


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_never_send_one_delivery_twice(studio_a, receiver):
    _hook(studio_a, receiver.url)
    for n in range(30):
        services.alert_raise(studio=studio_a, code="late", message="Late.", subject=f"item {n}")

    def sender():
        while webhooks.deliver_due():
            pass

    run_together(4, sender)

    ids = [json.loads(body)["id"] for _, body in receiver.received]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 30
    assert WebhookDelivery.objects.filter(status="succeeded", attempts=1).count() == 30


@pytest.mark.django_db
def test_admin_refuses_a_non_http_url_and_no_events(client, studio_a):
    operator = member_of(studio_a, username="desk")
    client.force_login(operator)

    response = client.post("/admin/station/webhook/add/", {
        "studio": studio_a.pk, "name": "Newsroom", "url": "ftp://example.org/hook", "secret": "s", "enabled": "on"})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "url" in errors and "event_types" in errors
    assert not Webhook.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_admin_sends_a_test_event_and_shows_the_log(client, studio_a, receiver):
    operator = member_of(studio_a, username="desk")
    client.force_login(operator)
    response = client.post("/admin/station/webhook/add/", {
        "studio": studio_a.pk, "name": "Newsroom", "url": receiver.url, "secret": "s3cret",
        "event_types": ["station.alert", "playout.on_air"], "enabled": "on"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    hook = Webhook.objects.get()

    response = client.post("/admin/station/webhook/", {"action": "send_test_event", "_selected_action": [hook.pk]},
                           follow=True)

    assert "done for 1 item" in response.content.decode()
    assert json.loads(receiver.received[0][1])["event"] == "station.test"
    log = client.get("/admin/station/webhookdelivery/").content.decode()
    assert "Test event" in log and "Succeeded" in log
