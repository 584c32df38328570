"""Events written to a dashboard's socket as frames built once per web process, through a real Daphne."""

import json
import socket
import time

import pytest
from django.db import transaction
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from station import events
from station.models import EventType
from station.tests.processes import WebServer, wait_for_other_sessions_to_end

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
EVENTS, PAYLOAD_BYTES = 80, 100_000  # 8 MB: more than a loopback socket's buffers on both ends hold


@pytest.fixture
def web():
    server = WebServer()
    server.start(LOG_LEVEL="WARNING")
    yield server
    server.process.terminate()
    server.process.wait(10)
    wait_for_other_sessions_to_end()


def test_a_dashboard_that_reads_slowly_gets_every_event_whole_and_in_order(web, operator_a, studio_a):
    # The server's writes fill the socket, then queue behind what it could not send: frames sent
    # at once and frames queued must still leave one after another, none cut or interleaved.
    reader = socket.create_connection(("127.0.0.1", web.port))
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 * 1024)
    key = Token.objects.create(user=operator_a).key
    with connect(f"ws://127.0.0.1:{web.port}/ws/studios/{studio_a.pk}/?token={key}", sock=reader,
                 origin="http://127.0.0.1", max_queue=1, max_size=2 * PAYLOAD_BYTES) as dashboard:
        assert json.loads(dashboard.recv(timeout=10))["type"] == "snapshot"
        with transaction.atomic():
            events.publish_many(studio_id=studio_a.pk, type=EventType.TEST,
                                payloads=[{"n": n, "filler": "x" * PAYLOAD_BYTES} for n in range(EVENTS)])
        time.sleep(2)  # the server writes while the dashboard reads nothing
        received = []
        while len(received) < EVENTS:
            message = json.loads(dashboard.recv(timeout=20))
            if message["type"] == "event":
                received.append(message["event"]["payload"])
    assert [payload["n"] for payload in received] == list(range(EVENTS))
    assert all(payload["filler"] == "x" * PAYLOAD_BYTES for payload in received)
