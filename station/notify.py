"""Change notifications: tables whose writes wake node agents (LISTEN/NOTIFY)."""

from django.apps import apps
from django.db import migrations

CHANNEL = "station_changes"


def tables_of(app_label: str) -> frozenset[str]:
    """The tables of an app's models: a notification's payload (``<table>:<id>``) names one of them."""
    return frozenset(model._meta.db_table for model in apps.get_app_config(app_label).get_models())


def notify_on_change(table: str, *, columns: tuple[str, ...] = ()) -> migrations.RunSQL:
    """A migration operation that makes writes to ``table`` NOTIFY the agents.

    With ``columns``, an UPDATE notifies only when it sets one of them, so
    bookkeeping writes (lease renewals, heartbeats) don't wake every agent.
    """
    trigger = f"{table}_notify_change"
    update = f"UPDATE OF {', '.join(columns)}" if columns else "UPDATE"
    return migrations.RunSQL(
        f"CREATE TRIGGER {trigger} AFTER INSERT OR {update} OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION station_notify_change();",
        f"DROP TRIGGER IF EXISTS {trigger} ON {table};",
    )
