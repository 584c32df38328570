"""Periodic django-q2 jobs, declared in code. Each loops with its own cadence (station.periodic)."""

from django.utils import timezone
from django_q.models import Schedule

# name → dotted function; each relaunches every minute if its chain of runs ever breaks.
PERIODIC_JOBS = {
    "recorders.tick": "recorders.tasks.tick",
}


def setup_schedules() -> list[str]:
    """Create or update the schedules and make them due now, so they run when the cluster starts."""
    for name, func in PERIODIC_JOBS.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1,
                      "next_run": timezone.now()},
        )
    return list(PERIODIC_JOBS)
