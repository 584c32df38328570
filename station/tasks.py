from django.conf import settings

from station import webhooks
from station.periodic import run_periodic_job


def deliver_webhooks(**options) -> bool:
    """Send due webhook deliveries every WEBHOOK_INTERVAL_SECONDS, on one replica at a time."""
    return run_periodic_job(name="station.webhooks", interval=settings.WEBHOOK_INTERVAL_SECONDS,
                            step=webhooks.deliver_due, **options)
