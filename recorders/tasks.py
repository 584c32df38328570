"""django-q2 entry points for recorders: thin callers of services."""

import os
import socket

from django.conf import settings
from django_q.tasks import async_task

from recorders import services
from station.periodic import LOCK_WAIT_SECONDS, run_exclusively

TICK_LOCK_KEY = 8210301  # the seed's scheduler lock key: one tick across all replicas


def tick(run_for: float | None = None, *, hand_over: bool = True, wait: float = LOCK_WAIT_SECONDS) -> bool:
    """The recorder safety net, every TICK_INTERVAL_SECONDS, on one replica at a time."""
    owner = f"tick@{socket.gethostname()}/{os.getpid()}"
    return run_exclusively(
        name="recorders.tick",
        lock_key=TICK_LOCK_KEY,
        interval=settings.TICK_INTERVAL_SECONDS,
        run_for=settings.TICK_RUN_SECONDS if run_for is None else run_for,
        step=lambda: services.housekeeping(owner=owner),
        on_handover=(lambda: async_task("recorders.tasks.tick", task_name="recorders.tick")) if hand_over else None,
        wait=wait,
    )
