import logging

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse

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
