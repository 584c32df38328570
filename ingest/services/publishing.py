"""Publishing assets to the external archive (PUBLISH_URL): claimed with SKIP LOCKED, retried with backoff."""

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ingest import fetch
from ingest.models import MediaAsset, Publication
from station.errors import UserError
from station.services import alert_raise

logger = logging.getLogger(__name__)
PUBLISH_BACKOFF_CAP = timedelta(hours=6)


def publication_queue(*, asset: MediaAsset, quiet: bool = False) -> Publication | None:
    """Publish ``asset`` to the archive from the next tick on (again, if it was published or gave up)."""
    if not settings.PUBLISH_URL:
        if quiet:
            return None
        raise UserError("publishing_off", _("No archive is configured (PUBLISH_URL is empty)."))
    if asset.status != MediaAsset.Status.READY:
        raise UserError("asset_not_ready", _("%(asset)s is %(status)s; only ready media can be published."),
                        {"asset": asset.title, "status": asset.get_status_display()})
    fresh = {"attempts": 0, "next_attempt_at": timezone.now(), "last_error": ""}
    publication, created = Publication.objects.get_or_create(asset=asset, defaults=fresh)
    if not created:
        publication.move_to(Publication.Status.PENDING, **fresh)
    return publication


def _publish_backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=settings.PUBLISH_BACKOFF_SECONDS * 2 ** (attempts - 1)), PUBLISH_BACKOFF_CAP)


def publications_claim_due(*, now: datetime, limit: int) -> list[Publication]:
    """Take due publications: each attempt is counted and the next one set before sending, so a crash retries later."""
    with transaction.atomic():
        due = list(Publication.objects.filter(status=Publication.Status.PENDING, next_attempt_at__lte=now)
                   .select_for_update(skip_locked=True).order_by("next_attempt_at", "pk")[:limit])
        for publication in due:
            publication.attempts += 1
            publication.next_attempt_at = now + max(_publish_backoff(publication.attempts),
                                                    timedelta(seconds=settings.PUBLISH_TIMEOUT_SECONDS))
            publication.save(update_fields=["attempts", "next_attempt_at", "updated_at"])
    return due


def publications_publish_due(*, now: datetime) -> int:
    """Send at most PUBLISH_BATCH due publications; return how many the archive accepted."""
    accepted = 0
    for publication in publications_claim_due(now=now, limit=settings.PUBLISH_BATCH):
        accepted += publication_send(publication=publication)
    return accepted


def publication_send(*, publication: Publication) -> bool:
    """POST the asset's file and metadata to PUBLISH_URL; record success, the next attempt, or giving up."""
    asset = MediaAsset.objects.select_related("studio").get(pk=publication.asset_id)
    try:
        _post_to_archive(asset)
    except UserError as error:
        now = timezone.now()
        if publication.attempts >= settings.PUBLISH_MAX_ATTEMPTS:
            Publication.objects.filter(pk=publication.pk).move_to(Publication.Status.FAILED, last_error=str(error),
                                                                  next_attempt_at=None, updated_at=now)
            alert_raise(studio=asset.studio_id, code="publish_failed", subject=asset.title,
                        message=_("%(asset)s was not published after %(attempts)d attempts: %(reason)s")
                        % {"asset": asset.title, "attempts": publication.attempts, "reason": error})
        else:
            Publication.objects.filter(pk=publication.pk).update(
                last_error=str(error), next_attempt_at=now + _publish_backoff(publication.attempts), updated_at=now)
        return False
    Publication.objects.filter(pk=publication.pk).move_to(Publication.Status.PUBLISHED, published_at=timezone.now(),
                                                          next_attempt_at=None, last_error="")
    return True


def _post_to_archive(asset: MediaAsset) -> None:
    metadata = {
        "id": asset.pk, "studio": asset.studio.slug, "title": asset.title, "origin": asset.origin,
        "sha256": asset.checksum, "size_bytes": asset.size_bytes, "duration_seconds": asset.duration_seconds,
        "format": asset.format_name, "created_at": asset.created_at.isoformat(),
    }
    path = Path(settings.MEDIA_ROOT) / asset.file.name
    try:
        with path.open("rb") as handle:
            response = requests.post(
                settings.PUBLISH_URL,
                data={"metadata": json.dumps(metadata)},
                files={"file": (path.name, handle, "application/octet-stream")},
                # the same key on every attempt: an archive that got it before (lost answer) keeps one copy
                headers={"Idempotency-Key": f"studio-{asset.studio_id}-{asset.pk}-{asset.checksum}", "User-Agent": fetch.USER_AGENT},
                timeout=(settings.INGEST_CONNECT_TIMEOUT_SECONDS, settings.PUBLISH_TIMEOUT_SECONDS),
            )
    except OSError as error:  # requests' errors are OSErrors too, as is a missing file
        raise UserError("publish_unreachable", _("The archive could not be reached: %(reason)s"),
                        {"reason": type(error).__name__}, inner=error) from error
    if response.status_code >= 300:
        raise UserError("publish_rejected", _("The archive answered HTTP %(status)d %(reason)s."),
                        {"status": response.status_code, "reason": response.reason})
