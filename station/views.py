import logging

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from station import calendars
from station import metrics as station_metrics
from station.dashboard import studio_snapshot
from station.models import Studio

logger = logging.getLogger(__name__)


def healthz(request):
    """The process is alive and serving requests."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Ready for traffic: the database answers and every migration is applied."""
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        logger.warning("readyz: database unreachable", exc_info=True)
        return JsonResponse({"status": "unavailable", "reason": "database"}, status=503)
    if pending:
        names = [f"{migration.app_label}.{migration.name}" for migration, _backwards in pending]
        return JsonResponse({"status": "unavailable", "reason": "migrations", "pending": names}, status=503)
    return JsonResponse({"status": "ok"})


def metrics(request):
    """The web processes' metrics, for a scraper holding METRICS_TOKEN; none without a token set."""
    if not settings.METRICS_TOKEN:
        raise Http404
    if not station_metrics.authorized(request.headers.get("Authorization", "")):
        return HttpResponse(status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    body, content_type = station_metrics.exposition(accept=request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)


@login_required
def dashboards(request):
    """The dashboard of the user's only studio, or the list to choose from."""
    studios = list(Studio.objects.visible_to(request.user).order_by("name"))
    if len(studios) == 1:
        return redirect("dashboard", studio_id=studios[0].pk)
    return render(request, "station/dashboards.html", {"studios": studios})


@login_required
def dashboard(request, studio_id: int):
    """The on-air desk's live page; a studio the user doesn't belong to is not found."""
    studio = get_object_or_404(Studio.objects.visible_to(request.user), pk=studio_id)
    return render(request, "station/dashboard.html",
                  {"studio": studio, "snapshot": studio_snapshot(studio.pk), "labels": _dashboard_labels()})


def _dashboard_labels() -> dict:
    return {
        "live": _("live"), "reconnecting": _("reconnecting…"), "onAir": _("On air"), "next": _("Next"),
        "nothing": _("Nothing"), "healthy": _("healthy"), "unhealthy": _("not answering"),
        "acknowledge": _("Acknowledge"), "noAlerts": _("No open alerts."), "noDownloads": _("No downloads running."),
        "idle": _("idle"), "startsIn": _("starts in"), "elapsed": _("elapsed"), "remaining": _("remaining"),
        "paused": _("paused"), "refused": _("This dashboard is not open to you."), "noAudio": _("no audio since"),
        "liveNow": _("LIVE"), "since": _("since"), "presenterConnected": _("connected"), "input": _("input"),
        "liveLost": _("live source lost"), "recording": _("REC"),
    }


@login_required
def dashboard_snapshot(request, studio_id: int):
    studio = get_object_or_404(Studio.objects.visible_to(request.user), pk=studio_id)
    return JsonResponse(studio_snapshot(studio.pk))


@require_GET
def studio_calendar(request, slug: str):
    """The studio's calendar feed: its channels' shows and its recording windows (station.calendars)."""
    return calendars.serve(request, slug, lambda studio: (studio.name, calendars.studio_events(studio)))
