"""The node agent: one long-running process per media host (``manage.py run_node``).

It converges its host to what the database wants: it heartbeats, LISTENs for
changes (re-arming within milliseconds of a commit), fires timed actions from
its own clock rather than a coarse tick, and survives database blips — engines
keep running while it reconnects, and every claim is a compare-and-set, so a
retry never does anything twice.
"""

import logging
import os
import signal
import socket
import time
import uuid

import psycopg
from django.conf import settings
from django.db import DatabaseError, connection, connections
from django.utils import timezone

from playout.supervisor import ChannelSupervisor
from recorders.supervisor import RecorderSupervisor
from station import services
from station.notify import CHANNEL

logger = logging.getLogger(__name__)
AGENT_VERSION = "1"
RECONNECT_BACKOFF_SECONDS = (0.5, 1, 2, 5)


class NodeAgent:
    def __init__(self, *, name: str):
        self.name = name
        # Unique per process: a restarted agent must take claims back through their lease like any other.
        self.owner = f"{name}/{os.getpid()}/{uuid.uuid4().hex[:6]}"
        self.stopping = False
        self.listener: psycopg.Connection | None = None
        self.supervisors: list = []

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        failures = 0
        try:
            while not self.stopping:
                try:
                    self._connect()
                    failures = 0
                    self._serve()
                except (DatabaseError, psycopg.Error) as error:
                    delay = RECONNECT_BACKOFF_SECONDS[min(failures, len(RECONNECT_BACKOFF_SECONDS) - 1)]
                    failures += 1
                    logger.warning("agent %s: database unavailable (%s); retrying in %s s", self.name, error, delay)
                    self._disconnect()
                    time.sleep(delay)
        finally:
            for supervisor in self.supervisors:
                supervisor.shutdown()
            self._disconnect()
            logger.info("agent %s stopped", self.name)

    def _request_stop(self, signum, frame) -> None:
        self.stopping = True

    def _connect(self) -> None:
        params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
        self.listener = psycopg.connect(**params, autocommit=True)
        self.listener.execute(f"LISTEN {CHANNEL}")
        node = services.node_heartbeat(name=self.name, hostname=socket.gethostname(), version=AGENT_VERSION)
        if not self.supervisors:
            self.supervisors = [RecorderSupervisor(node=node, owner=self.owner), ChannelSupervisor(node=node)]
        for supervisor in self.supervisors:
            supervisor.node = node
            supervisor.on_change(timezone.now())
        logger.info("agent %s (%s) listening", self.name, self.owner)

    def _disconnect(self) -> None:
        if self.listener is not None:
            try:
                self.listener.close()
            except psycopg.Error:
                pass
            self.listener = None
        connections.close_all()

    def _serve(self) -> None:
        next_heartbeat = next_rearm = 0.0
        while not self.stopping:
            now = timezone.now()
            clock = time.time()
            if clock >= next_heartbeat:
                services.node_heartbeat(name=self.name, hostname=socket.gethostname(), version=AGENT_VERSION)
                for supervisor in self.supervisors:
                    supervisor.renew(now)
                next_heartbeat = clock + settings.AGENT_HEARTBEAT_SECONDS
            if clock >= next_rearm:
                for supervisor in self.supervisors:
                    supervisor.rearm(now)
                next_rearm = clock + settings.AGENT_REARM_SECONDS
            for supervisor in self.supervisors:
                supervisor.step(timezone.now())
            deadlines = [next_heartbeat, next_rearm]
            deadlines += [d for d in (s.next_deadline() for s in self.supervisors) if d is not None]
            if self._wait_for_change(max(0.0, min(deadlines) - time.time())):
                for supervisor in self.supervisors:
                    supervisor.on_change(timezone.now())

    def _wait_for_change(self, timeout: float) -> bool:
        """Sleep until a change is notified or the timeout passes; True if something changed."""
        changed = False
        for _notify in self.listener.notifies(timeout=timeout, stop_after=1):
            changed = True
        if changed:  # take the rest of a burst at once
            for _notify in self.listener.notifies(timeout=0.01):
                pass
        return changed
