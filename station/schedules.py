"""Periodic django-q2 jobs, declared in code. Each loops with its own cadence (station.periodic)."""

from datetime import timedelta

from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

# name → dotted function; each relaunches every minute if its chain of runs ever breaks.
PERIODIC_JOBS = {
    "recorders.tick": "recorders.tasks.tick",
    "playout.health": "playout.tasks.health",
}


def setup_schedules() -> list[str]:
    """Create or update the schedules and queue a first run of each, so they start with the cluster.

    A run queued while another replica's loop holds the lock waits briefly and exits: no overlap.
    """
    for name, func in PERIODIC_JOBS.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1,
                      "next_run": timezone.now() + timedelta(minutes=1)},
        )
        async_task(func, task_name=name)
    return list(PERIODIC_JOBS)
