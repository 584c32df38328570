"""Which node agents are connected to the database: a killed agent is known gone at once.

An agent's process dies with its database session: the server sees the socket close and the
session leaves ``pg_stat_activity`` within milliseconds, where missed probes take several probe
periods to add up. Each agent names its listening session after its node (``announce``); the
health job watches those names (``AgentPresence``) and moves a gone agent's channels at once.

Only a session that was seen and is no more counts, and only while the server runs on: after a
PostgreSQL restart every session is new, and agents that have not reconnected yet are not gone.
A frozen agent or one cut off from the database keeps its session open on the server; its missed
probes decide, as before.
"""

from datetime import datetime

import psycopg
from django.db import connection

APPLICATION_PREFIX = "stationkeeper agent "


def announce(session: psycopg.Connection, node) -> None:
    """Name the agent's long-lived session after its node, so that its end says the agent is gone."""
    session.execute("SELECT set_config('application_name', %s, false)", [f"{APPLICATION_PREFIX}{node.pk}"])


class AgentPresence:
    """The nodes whose agent this watcher saw connected and no longer is, in one run of the database server."""

    def __init__(self):
        self.seen: set[int] = set()
        self.server_started: datetime | None = None

    def gone(self) -> set[int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_postmaster_start_time(), coalesce(array_agg(substr(application_name, %s)), '{}') "
                "FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE %s",
                [len(APPLICATION_PREFIX) + 1, APPLICATION_PREFIX + "%"],
            )
            server_started, names = cursor.fetchone()
        present = {int(name) for name in names if name.isdigit()}
        if server_started != self.server_started:  # restarted: no session of before is left to miss
            self.seen, self.server_started = set(), server_started
        self.seen |= present
        return self.seen - present
