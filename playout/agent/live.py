"""Presenters at the channels' live inputs: the engines ask the agent about each connection, and tell it what
became of them.

``LiveDoor`` is a loopback HTTP server an engine asks (POST /live/<channel id>, the source client's
user, password and address) whether to let a source client in: 200 with the grant as numbers
(``credential on-air-from on-air-until connected-until``, epoch seconds), 403 otherwise. Each
refusal is logged with its reason and the client's address, and counted; a password never is.
``LiveWatch`` takes the engines' live events: who is connected (a revoked credential is let go),
their input's level each second, sent to the studio's dashboards as a reading, and a source lost past its grace
time, which alerts the desk.
"""

import json
import logging
import math
import queue
import re
from http.server import BaseHTTPRequestHandler

from django.db import connections
from django.utils import timezone

from playout import presenters, services
from playout.agent.launcher import RunningChannel
from playout.models import LiveCredential
from station import events, metrics
from station.errors import UserError
from station.fencing import Fenced
from station.loopback import LoopbackServer

logger = logging.getLogger(__name__)
_PATH = re.compile(r"/live/(\d+)")
MAX_BODY_BYTES = 4096
LIVE_INPUT_METER = "playout.live_input"


class LiveDoor(LoopbackServer):
    thread_name = "live-door"

    def answer_post(self, request: BaseHTTPRequestHandler) -> None:
        try:
            self._answer(request)
        finally:
            connections.close_all()  # this request's thread, and its connection, end here

    def url_for(self, channel_id: int) -> str:
        return f"{self.base_url}/live/{int(channel_id)}"

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        match = _PATH.fullmatch(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        if match is None or not 0 < length <= MAX_BODY_BYTES:
            request.send_error(404)
            return
        try:
            login = dict(json.loads(request.rfile.read(length)))
            user, password, address = (str(login[key]) for key in ("user", "password", "address"))
        except (ValueError, TypeError, KeyError):
            request.send_error(400)
            return
        channel_id = int(match[1])
        try:
            grant = presenters.live_source_admit(channel_id=channel_id, username=user, password=password,
                                                 now=timezone.now())
        except UserError as refusal:
            logger.warning("channel %s: live source refused from %s (user %r): %s", channel_id, address, user, refusal)
            metrics.LIVE_REFUSALS.labels(reason=refusal.code).inc()
            _reply(request, 403, refusal.code)
            return
        logger.info("channel %s: live source of %s let in from %s", channel_id, grant.presenter, address)
        _reply(request, 200, " ".join([str(grant.credential_id), *(f"{moment.timestamp():.3f}" for moment in (
            grant.on_air_from, grant.on_air_until, grant.connected_until))]))



def _reply(request: BaseHTTPRequestHandler, status: int, body: str) -> None:
    data = body.encode()
    request.send_response(status)
    request.send_header("Content-Type", "text/plain")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


class LiveWatch:
    """The engines' live events, as (channel id, event, detail, lease epoch) from their reader threads
    (``LiquidsoapEngine.on_live``)."""

    def __init__(self):
        self.events: queue.Queue = queue.Queue()
        self.presenters: dict[int, str] = {}  # credential id → presenter, for the readings

    def apply(self, channels: dict[int, RunningChannel]) -> set[int]:
        """Take the events in: who is connected where, and sources lost past their grace (alerted). Returns the
        channels whose writes were refused (another node holds them now)."""
        fenced = set()
        while True:
            try:
                channel_id, event, detail, epoch = self.events.get_nowait()
            except queue.Empty:
                return fenced
            running, credential_id = channels.get(channel_id), int(detail) if detail.isdigit() else None
            if event == "connected" and running:
                running.live_credential_id = credential_id
            elif event == "disconnected" and running and running.live_credential_id == credential_id:
                running.live_credential_id = None
                self._meter(running, None)
            elif event == "level" and running and running.live_credential_id:
                self._meter(running, float(detail))
            elif event == "busy":
                logger.warning("channel %s: live source refused from %s: another is connected", channel_id, detail)
                metrics.LIVE_REFUSALS.labels(reason="live_input_busy").inc()
            elif event == "lost":
                try:
                    services.channel_live_lost(channel_id=channel_id, epoch=epoch, credential_id=credential_id)
                except Fenced:
                    fenced.add(channel_id)

    def _meter(self, running: RunningChannel, level_dbfs: float | None) -> None:
        """The presenter connected to the channel's live input and their level (None: gone), for the dashboards."""
        credential_id = running.live_credential_id
        if credential_id and credential_id not in self.presenters:
            self.presenters[credential_id] = (LiveCredential.objects.filter(pk=credential_id)
                                              .values_list("presenter", flat=True).first() or "")
        events.publish_meter(studio_id=running.channel.studio_id, type=LIVE_INPUT_METER, payload={
            "channel": running.channel.pk, "presenter": self.presenters.get(credential_id) if level_dbfs is not None else None,
            "level_dbfs": level_dbfs if level_dbfs is None or math.isfinite(level_dbfs) else -120.0})

    @staticmethod
    def let_go_revoked(channels: dict[int, RunningChannel]) -> None:
        """A presenter whose credential was revoked (or deleted) is disconnected at once."""
        connected = {running.live_credential_id: running for running in channels.values() if running.live_credential_id}
        if not connected:
            return
        valid = set(LiveCredential.objects.filter(pk__in=connected, revoked_at__isnull=True).values_list("pk", flat=True))
        for credential_id, running in connected.items():
            if credential_id in valid:
                continue
            logger.warning("channel %s: live credential %s was revoked; letting its source go", running.channel,
                           credential_id)
            try:
                running.engine.gateway.kick_live()
                running.live_credential_id = None
            except OSError as error:
                logger.error("channel %s: the engine did not let the revoked source go: %s", running.channel, error)
