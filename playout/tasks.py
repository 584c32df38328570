"""django-q2 entry points for playout: thin callers of services."""

from django.conf import settings
from django.utils import timezone
from django_q.tasks import async_task

from playout import services
from station.periodic import LOCK_WAIT_SECONDS, run_exclusively

HEALTH_LOCK_KEY = 8210302


def health(run_for: float | None = None, *, hand_over: bool = True, wait: float = LOCK_WAIT_SECONDS) -> bool:
    """Channel health and failover, every PLAYOUT_HEALTH_INTERVAL_SECONDS, on one replica at a time."""
    return run_exclusively(
        name="playout.health",
        lock_key=HEALTH_LOCK_KEY,
        interval=settings.PLAYOUT_HEALTH_INTERVAL_SECONDS,
        run_for=settings.TICK_RUN_SECONDS if run_for is None else run_for,
        step=lambda: services.channels_check_health(now=timezone.now()),
        on_handover=(lambda: async_task("playout.tasks.health", task_name="playout.health")) if hand_over else None,
        wait=wait,
    )
