"""Agents' presence: a node whose agent's session ended is gone at the next look, not before it was seen."""

import psycopg
import pytest
from django.db import connection

from station.presence import AgentPresence, announce
from station.tests.factories import NodeFactory
from station.tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _agent_session(node) -> psycopg.Connection:
    params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
    session = psycopg.connect(**params, autocommit=True)
    announce(session, node)
    return session


def test_a_node_is_gone_once_its_agents_session_ends_and_back_when_it_reconnects():
    first, second = NodeFactory(name="host-1"), NodeFactory(name="host-2")
    presence = AgentPresence()
    sessions = {node.pk: _agent_session(node) for node in (first, second)}
    try:
        assert presence.gone() == set()
        sessions.pop(first.pk).close()
        # the server takes a moment to end the session
        wait_until(lambda: presence.gone() == {first.pk}, timeout=5, message="host-1 gone")
        assert presence.gone() == {first.pk}  # until it comes back

        sessions[first.pk] = _agent_session(first)
        assert presence.gone() == set()
    finally:
        for session in sessions.values():
            session.close()


def test_an_agent_never_seen_is_not_gone_and_a_server_restart_forgets_who_was_seen():
    node = NodeFactory(name="host-1")
    presence = AgentPresence()
    assert presence.gone() == set()  # an agent not connected yet (or reconnecting after a restart): its probes decide

    session = _agent_session(node)
    presence.gone()
    session.close()
    wait_until(lambda: presence.gone(), timeout=5, message="host-1 gone")
    presence.server_started = None  # as though the server had restarted since the last look
    assert presence.gone() == set()
