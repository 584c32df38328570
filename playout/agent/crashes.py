"""What the agent does when a channel's engine or its handling fails: restart, give up, or report."""

import contextlib
import logging
import time

from django.db import DatabaseError
from django.utils.translation import gettext as _

from playout.agent.launcher import RunningChannel
from playout.models import Channel
from station.models import Alert
from station.services import alert_raise

logger = logging.getLogger(__name__)
# An engine that dies is restarted here at once; one that keeps dying is left for the health job
# to move to another node (the host may be what is wrong).
CRASHES_BEFORE_GIVING_UP, CRASH_WINDOW_SECONDS = 3, 60
FAULT_ALERT_SECONDS = 60  # a channel whose handling keeps failing is reported once a minute, not every step


class CrashPolicy:
    def __init__(self):
        self.crashes: dict[int, list[float]] = {}  # channel id → when its engine died lately
        self.given_up: dict[int, int] = {}  # channel id → its restart count when this node gave up on it
        self.faults_reported: dict[int, float] = {}  # channel id → when its last fault was reported

    def give_up(self, channel: Channel) -> None:
        """Start the channel here no more, until it moves or is restarted on purpose."""
        self.given_up[channel.pk] = channel.restart_count

    def drop_given_up(self, wanted: dict[int, Channel]) -> None:
        """Take the channels this node gave up on out of ``wanted``; forget those moved or restarted since."""
        self.given_up = {pk: count for pk, count in self.given_up.items()
                         if pk in wanted and wanted[pk].restart_count == count}  # moved, or restarted on purpose
        for pk in self.given_up:
            wanted.pop(pk)

    def engine_died(self, running: RunningChannel) -> bool:
        """Note an engine's death; True if it should be started again at once, False if this node gives up."""
        channel = running.channel
        recent = [t for t in self.crashes.get(channel.pk, []) if time.time() - t < CRASH_WINDOW_SECONDS] + [time.time()]
        self.crashes[channel.pk] = recent
        last_words = " | ".join(running.engine.last_lines(3))
        if len(recent) >= CRASHES_BEFORE_GIVING_UP:
            logger.error("channel %s: Liquidsoap died %s times in %s s (%s); leaving it to another node",
                         channel, len(recent), CRASH_WINDOW_SECONDS, last_words)
            self.give_up(channel)
            self.crashes.pop(channel.pk)
            return False
        logger.warning("channel %s: Liquidsoap exited (%s); restarting", channel, last_words)
        return True

    @contextlib.contextmanager
    def contained(self, channel: Channel, doing: str, *, node):
        """What goes wrong for one channel stays with it: logged, reported to its studio, the others carry on."""
        try:
            yield
        except DatabaseError:
            raise  # the database, not the channel: the agent reconnects
        except Exception as error:
            logger.exception("channel %s: could not %s", channel, doing)
            if time.monotonic() - self.faults_reported.get(channel.pk, -FAULT_ALERT_SECONDS) >= FAULT_ALERT_SECONDS:
                self.faults_reported[channel.pk] = time.monotonic()
                alert_raise(studio=channel.studio_id, code="channel_agent_error", subject=channel.name,
                            severity=Alert.Severity.CRITICAL,
                            message=_("The agent on %(node)s could not %(doing)s for %(channel)s: %(reason)s")
                            % {"node": node, "doing": doing, "channel": channel, "reason": error})
