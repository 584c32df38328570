"""Periodic django-q2 jobs, declared in code. Each loops with its own cadence (station.periodic)."""

from datetime import timedelta
from typing import NamedTuple

from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from station import queues


class PeriodicJob(NamedTuple):
    func: str  # dotted path of the job
    queue: str  # the cluster that runs it (station.queues)
    lock_key: int = 0  # the advisory lock one replica's loop holds (looping jobs only)


# name → job; each relaunches every minute if its chain of runs ever breaks. 8210301 is the seed's
# scheduler lock key: one recorder tick across all replicas, old and new.
PERIODIC_JOBS = {
    "recorders.tick": PeriodicJob("recorders.tasks.tick", queues.PLAYOUT, lock_key=8210301),
    "playout.health": PeriodicJob("playout.tasks.health", queues.EVENTS, lock_key=8210302),
    "ingest.tick": PeriodicJob("ingest.tasks.tick", queues.INGEST, lock_key=8210303),
    "station.webhooks": PeriodicJob("station.tasks.deliver_webhooks", queues.EVENTS, lock_key=8210304),
}
# name → job run once an hour (no loop of its own).
HOURLY_JOBS = {
    "station.prune_events": PeriodicJob("station.events.prune", queues.EVENTS),
    "station.prune_channel_layer": PeriodicJob("station.channel_layer.prune", queues.EVENTS),
}


def setup_schedules() -> list[str]:
    """Create or update the schedules and queue a first run of each, so they start with the cluster.

    A run queued while another replica's loop holds the lock waits briefly and exits: no overlap.
    """
    for name, job in PERIODIC_JOBS.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": job.func, "cluster": job.queue, "schedule_type": Schedule.MINUTES, "minutes": 1,
                      "repeats": -1, "next_run": timezone.now() + timedelta(minutes=1)},
        )
        async_task(job.func, task_name=name, cluster=job.queue)
    for name, job in HOURLY_JOBS.items():
        Schedule.objects.update_or_create(
            name=name, defaults={"func": job.func, "cluster": job.queue, "schedule_type": Schedule.HOURLY, "repeats": -1},
        )
    return list(PERIODIC_JOBS) + list(HOURLY_JOBS)
