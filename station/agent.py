"""The node agent: one long-running process per media host (``manage.py run_node``).

It converges its host to what the database wants: it heartbeats, LISTENs for
changes (re-arming within milliseconds of a commit), fires timed actions from
its own clock rather than a coarse tick, and survives database blips — engines
keep running while it reconnects, and every claim is a compare-and-set, so a
retry never does anything twice.

Its prober thread heartbeats the node and reports the engines that answer on its
own cadence and database connection, so a busy main loop never makes the health
job fail over engines that are playing; a loop stuck for AGENT_STALL_SECONDS makes
it fall silent too, so the node counts as down and its work moves. It registers once per
process, with a new agent epoch (``station.fencing``): if another process registers as the
node later, this one's heartbeats are refused and it stops, engines and all. Whatever goes wrong inside one
supervisor's pass is logged and the loop carries on: one bad row fails its own
channel or window (the supervisors see to that), never the agent.
"""

import logging
import os
import signal
import socket
import threading
import time
import uuid

import psycopg
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, connections
from django.utils import timezone

from playout.agent import ChannelSupervisor
from recorders.supervisor import RecorderSupervisor
from station import presence, services
from station.fencing import Fenced
from station.notify import CHANNEL

logger = logging.getLogger(__name__)
AGENT_VERSION = "1"
RECONNECT_BACKOFF_SECONDS = (0.5, 1, 2, 5)
REPLACED_EXIT_STATUS = 3  # another process runs as the node: a supervisor must not start this one again
FAULT_PAUSE_SECONDS = 0.1  # after an unexpected error in a pass: a fault that repeats can't spin the loop


class NodeAgent:
    def __init__(self, *, name: str):
        self.name = name
        # Unique per process: a restarted agent must take claims back through their lease like any other.
        self.owner = f"{name}/{os.getpid()}/{uuid.uuid4().hex[:6]}"
        self.stopping = False
        self.node = None  # as registered by this process: its heartbeats carry its agent epoch
        self.replaced = False  # another process registered as the node: this one stopped
        self.listener: psycopg.Connection | None = None
        self.supervisors: list = []
        self.prober: threading.Thread | None = None
        self.last_pass = time.monotonic()  # when the main loop last went round (the prober watches it)

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
                except Fenced:
                    self._replaced()
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

    def _replaced(self) -> None:
        logger.error("agent %s: another agent process registered as this node; stopping this one and its engines",
                     self.name)
        self.replaced = self.stopping = True

    def _heartbeat(self):
        report = {"hostname": socket.gethostname(), "version": AGENT_VERSION,
                  "capture_devices": settings.NODE_CAPTURE_DEVICES}
        if self.node is None:
            self.node = services.node_register(name=self.name, **report)
        else:
            self.node = services.node_heartbeat(node=self.node, **report)
        return self.node

    def _connect(self) -> None:
        params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
        self.listener = psycopg.connect(**params, autocommit=True)
        self.listener.execute(f"LISTEN {CHANNEL}")
        node = self._heartbeat()
        presence.announce(self.listener, node)
        if not self.supervisors:
            self.supervisors = [RecorderSupervisor(node=node, owner=self.owner, capture_devices=settings.NODE_CAPTURE_DEVICES),
                                ChannelSupervisor(node=node)]
        for supervisor in self.supervisors:
            supervisor.node = node
            self._contained(supervisor.on_change, timezone.now())
        if self.prober is None:
            self.prober = threading.Thread(target=self._probe_forever, name="prober", daemon=True)
            self.prober.start()
        logger.info("agent %s (%s) listening", self.name, self.owner)

    def _probe_forever(self) -> None:
        """Heartbeat the node and report answering engines while the main loop goes round, however slowly (not once stuck)."""
        every = min(settings.PLAYOUT_PROBE_SECONDS, settings.AGENT_HEARTBEAT_SECONDS)
        next_heartbeat, stalled = 0.0, False
        while not self.stopping:
            began = time.monotonic()
            if began - self.last_pass > settings.AGENT_STALL_SECONDS:
                if not stalled:
                    logger.error("agent %s: its loop has been stuck for %.0f s; no longer reporting the node alive",
                                 self.name, began - self.last_pass)
                stalled = True
                time.sleep(every)
                continue
            stalled = False
            try:
                if began >= next_heartbeat:
                    self._heartbeat()
                    next_heartbeat = began + settings.AGENT_HEARTBEAT_SECONDS
                for supervisor in self.supervisors:
                    if hasattr(supervisor, "probe"):
                        supervisor.probe(timezone.now())
            except Fenced:
                self._replaced()
                return
            except Exception:  # the database is away, or an engine misbehaves: try again next round
                logger.warning("agent %s: probe round failed", self.name, exc_info=True)
                close_old_connections()
                connections["default"].close()
            time.sleep(max(0.0, every - (time.monotonic() - began)))

    def _contained(self, action, *args) -> None:
        """Run one supervisor's action; an unexpected error is logged, and the agent goes on serving."""
        try:
            action(*args)
        except (DatabaseError, psycopg.Error):
            raise  # the agent reconnects
        except Exception:
            logger.exception("agent %s: %s failed; carrying on", self.name, getattr(action, "__qualname__", action))
            time.sleep(FAULT_PAUSE_SECONDS)

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
            self.last_pass = time.monotonic()
            now = timezone.now()
            clock = time.time()
            if clock >= next_heartbeat:  # the node's own heartbeat is the prober's
                for supervisor in self.supervisors:
                    self._contained(supervisor.renew, now)
                next_heartbeat = clock + settings.AGENT_HEARTBEAT_SECONDS
            if clock >= next_rearm:
                for supervisor in self.supervisors:
                    self._contained(supervisor.rearm, now)
                next_rearm = clock + settings.AGENT_REARM_SECONDS
            for supervisor in self.supervisors:
                self._contained(supervisor.step, timezone.now())
            deadlines = [next_heartbeat, next_rearm]
            deadlines += [d for d in (s.next_deadline() for s in self.supervisors) if d is not None]
            changed = self._wait_for_changes(max(0.0, min(deadlines) - time.time()))
            for supervisor in self.supervisors:
                if changed & supervisor.watches:  # a window's change doesn't make the channels re-read theirs
                    self._contained(supervisor.on_change, timezone.now())

    def _wait_for_changes(self, timeout: float) -> set[str]:
        """Sleep until a change is notified or the timeout passes; the tables that changed."""
        notified = list(self.listener.notifies(timeout=timeout, stop_after=1))
        if notified:  # take the rest of a burst at once
            notified += self.listener.notifies(timeout=0.01)
        return {notify.payload.partition(":")[0] for notify in notified}  # the payload: <table>:<id>
