"""django-q2 entry points for recorders: thin callers of services."""

import os
import socket

from django.conf import settings

from recorders import services
from station.periodic import run_periodic_job


def tick(**options) -> bool:
    """The recorder safety net, every TICK_INTERVAL_SECONDS, on one replica at a time."""
    owner = f"tick@{socket.gethostname()}/{os.getpid()}"
    return run_periodic_job(name="recorders.tick", interval=settings.TICK_INTERVAL_SECONDS,
                            step=lambda: services.housekeeping(owner=owner), **options)
