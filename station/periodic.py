"""Periodic jobs with a cadence of their own, run by exactly one replica at a time.

django-q2's scheduler wakes only about every 30 s, far too coarse for air. A
periodic job therefore runs as one long django-q2 task that loops every
``interval`` seconds for ``run_for`` seconds while holding a PostgreSQL
advisory lock, then enqueues its successor and releases the lock; the
successor waits for the lock, so runs never overlap. A django-q2 schedule
relaunches the chain if it ever breaks (a worker killed), and launches it at
cluster start.
"""

import logging
import time
from collections.abc import Callable

from station import locks, metrics

logger = logging.getLogger(__name__)
LOCK_WAIT_SECONDS = 10


def run_exclusively(*, name: str, lock_key: int, interval: float, run_for: float, step: Callable[[], object],
                    on_handover: Callable[[], None] | None = None, wait: float = LOCK_WAIT_SECONDS) -> bool:
    """Run ``step`` every ``interval`` s for ``run_for`` s under the lock; False if another replica has it."""
    with locks.session_lock(lock_key, wait_seconds=wait) as held:
        if not held:
            logger.debug("%s: another replica holds the lock", name)
            return False
        logger.info("%s: running for %s s every %s s", name, run_for, interval)
        due = time.monotonic()  # when the next pass should begin
        ends = due + run_for
        while time.monotonic() < ends:
            began = time.monotonic()
            metrics.PERIODIC_LAG.labels(job=name).observe(began - due)  # a slow pass, or a machine too busy to wake us
            if not locks.session_lock_held(lock_key):
                logger.warning("%s: lost its lock (database reconnect); stopping", name)
                return True
            try:
                step()
            except Exception:  # one bad pass must not stop housekeeping for the whole station
                logger.exception("%s: step failed", name)
            due = began + interval
            time.sleep(max(0.0, due - time.monotonic()))
        if on_handover:
            on_handover()
    return True


def run_periodic_job(*, name: str, interval: float, step: Callable[[], object],
                     run_for: float | None = None, hand_over: bool = True, wait: float = LOCK_WAIT_SECONDS) -> bool:
    """A declared periodic job's run: loop under its lock, then queue its successor (see station.schedules)."""
    from django.conf import settings
    from django_q.tasks import async_task

    from station.schedules import PERIODIC_JOBS

    return run_exclusively(
        name=name,
        lock_key=PERIODIC_JOBS[name].lock_key,
        interval=interval,
        run_for=settings.TICK_RUN_SECONDS if run_for is None else run_for,
        step=step,
        on_handover=(lambda: async_task(PERIODIC_JOBS[name].func, task_name=name, cluster=PERIODIC_JOBS[name].queue))
        if hand_over else None,
        wait=wait,
    )
