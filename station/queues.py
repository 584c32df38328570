"""Work queues per concern: playout, ingest, events (the Sofie job-worker rule).

Each concern is its own django-q2 cluster with workers of its own
(``Q_CLUSTER_NAME=ingest manage.py qcluster``; ``playout`` is the default), so
a flood of ingest jobs never delays a playout job. Studios listed in STUDIO_QUEUES get
queues of their own per concern (``ingest-news``), so a cluster can work for a subset
of studios while the plain queues serve the rest. A job may queue work on
another queue, but never waits for it: ``enqueue`` returns at once and queues
only after the caller's transaction commits.
"""

import time

from django.conf import settings
from django.db import transaction
from django_q.conf import Conf
from django_q.tasks import async_task

from station import metrics

PLAYOUT = "playout"  # time-critical station work: the recording tick, channel actions
INGEST = "ingest"  # bulk media work: feed polls, downloads, publishing
EVENTS = "events"  # low-priority watchers: channel health, notifications
QUEUES = (PLAYOUT, INGEST, EVENTS)


def queue_for(concern: str, *, studio_slug: str) -> str:
    """The queue of a studio's jobs of one concern: ``concern-group`` for a studio in STUDIO_QUEUES, else ``concern``."""
    for group, slugs in settings.STUDIO_QUEUES.items():
        if studio_slug in slugs:
            return f"{concern}-{group}"
    return concern


def enqueue(queue: str, func: str, *args, task_name: str | None = None, **kwargs) -> None:
    """Queue ``func(*args, **kwargs)`` on ``queue`` once the current transaction commits."""
    if queue.split("-", 1)[0] not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; expected one of {QUEUES}, or one of them with a studio group")
    options = {"cluster": queue, **({"task_name": task_name} if task_name else {})}
    transaction.on_commit(lambda: async_task(func, *args, q_options=options, **kwargs))


def waited(enqueued_at: float) -> float:
    """Return how long this job sat in its queue (seconds): a queue's latency, as operators and the bench measure it."""
    return time.time() - enqueued_at


def job_picked_up(sender, func, task: dict, **signal) -> None:
    """Receive django-q2's ``pre_execute`` in a worker: note how long the job waited in this cluster's queue."""
    metrics.QUEUE_WAIT.labels(queue=Conf.CLUSTER_NAME).observe(waited(task["started"].timestamp()))
