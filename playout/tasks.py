"""django-q2 entry points for playout: thin callers of services."""

from django.conf import settings
from django.utils import timezone

from playout import podcasts, services
from station.periodic import run_periodic_job
from station.presence import AgentPresence


def health(**options) -> bool:
    """Channel health and failover, every PLAYOUT_HEALTH_INTERVAL_SECONDS, on one replica at a time."""
    presence = AgentPresence()
    return run_periodic_job(name="playout.health",
                            interval=settings.PLAYOUT_HEALTH_INTERVAL_SECONDS,
                            step=lambda: services.channels_check_health(now=timezone.now(), agents_gone=presence.gone()),
                            **options)


def episode_make(episode_id: int) -> None:
    """A show's recording made a podcast episode (queued when the recording completes)."""
    podcasts.episode_make(episode_id=episode_id)
