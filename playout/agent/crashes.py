"""What the agent does when a channel's engine or its handling fails: restart, give up, or report."""

import contextlib
import logging
import math
import time

from django.db import DatabaseError
from django.utils.translation import gettext as _

from playout.agent.launcher import RunningChannel
from playout.models import Channel
from station import metrics
from station.fencing import Fenced
from station.models import Alert
from station.services import alert_raise

logger = logging.getLogger(__name__)
# An engine that dies is restarted here at once; one that keeps dying rests here, the health job
# moving it to another node meanwhile if one can take it (the host may be what is wrong), and is
# tried here again after a rest that grows while it keeps dying: nobody has to restart it by hand.
CRASHES_BEFORE_RESTING, CRASH_WINDOW_SECONDS = 3, 60
REST_SECONDS = (10, 30, 60, 120, 300)
FAULT_ALERT_SECONDS = 60  # a channel whose handling keeps failing is reported once a minute, not every step


class CrashPolicy:
    def __init__(self):
        self.crashes: dict[int, list[float]] = {}  # channel id → when its engine died lately
        self.given_up: dict[int, int] = {}  # channel id → its restart count when this node gave up on it
        # channel id → (its restart count, its lease epoch, when its rest ends)
        self.resting: dict[int, tuple[int, int, float]] = {}
        self.loops: dict[int, tuple[int, float]] = {}  # channel id → (crash loops in a row, when the last rest ended)
        self.faults_reported: dict[int, float] = {}  # channel id → when its last fault was reported

    def give_up(self, channel: Channel) -> None:
        """Start the channel here no more, until it moves or is restarted on purpose."""
        self.given_up[channel.pk] = channel.restart_count

    def drop_given_up(self, wanted: dict[int, Channel]) -> None:
        """Take the channels this node gave up on or rests out of ``wanted``; forget those moved or restarted since."""
        self.given_up = {pk: count for pk, count in self.given_up.items()
                         if pk in wanted and wanted[pk].restart_count == count}  # moved, or restarted on purpose
        for pk in [*self.given_up, *self.resting]:
            wanted.pop(pk, None)

    def rested(self) -> list[tuple[int, int, int]]:
        """(channel id, its restart count, its lease epoch) of the channels whose rest is over: to be tried again."""
        over = [(pk, count, epoch) for pk, (count, epoch, until) in self.resting.items() if until <= time.monotonic()]
        for pk, *_then in over:
            self.resting.pop(pk)
        return over

    def engine_died(self, running: RunningChannel) -> float | None:
        """Note an engine's death; None if it should be started again at once, else the seconds it rests first."""
        channel = running.channel
        metrics.ENGINE_RESTARTS.labels(engine="liquidsoap").inc()  # started again here, at once or after a rest
        recent = [t for t in self.crashes.get(channel.pk, []) if time.time() - t < CRASH_WINDOW_SECONDS] + [time.time()]
        self.crashes[channel.pk] = recent
        last_words = running.engine.last_words()
        if len(recent) < CRASHES_BEFORE_RESTING:
            logger.warning("channel %s: Liquidsoap exited (%s); restarting", channel, last_words)
            return None
        loops, last_rest_ended = self.loops.get(channel.pk, (0, -math.inf))
        if time.monotonic() - last_rest_ended > 2 * CRASH_WINDOW_SECONDS:
            loops = 0  # it had run a while since its last rest: this loop is a new one
        rest = REST_SECONDS[min(loops, len(REST_SECONDS) - 1)]
        self.loops[channel.pk] = (loops + 1, time.monotonic() + rest)
        self.resting[channel.pk] = (channel.restart_count, running.epoch, time.monotonic() + rest)
        self.crashes.pop(channel.pk)
        logger.error("channel %s: Liquidsoap died %s times in %s s (%s); trying it again in %s s",
                     channel, len(recent), CRASH_WINDOW_SECONDS, last_words, rest)
        return rest

    @contextlib.contextmanager
    def contained(self, channel: Channel, doing: str, *, node):
        """What goes wrong for one channel stays with it: logged, reported to its studio, the others carry on."""
        try:
            yield
        except (DatabaseError, Fenced):
            raise  # the database, not the channel: the agent reconnects; or the channel is another node's now
        except Exception as error:
            logger.exception("channel %s: could not %s", channel, doing)
            if time.monotonic() - self.faults_reported.get(channel.pk, -FAULT_ALERT_SECONDS) >= FAULT_ALERT_SECONDS:
                self.faults_reported[channel.pk] = time.monotonic()
                alert_raise(studio=channel.studio_id, code="channel_agent_error", subject=channel.name,
                            severity=Alert.Severity.CRITICAL,
                            message=_("The agent on %(node)s could not %(doing)s for %(channel)s: %(reason)s")
                            % {"node": node, "doing": doing, "channel": channel, "reason": error})
