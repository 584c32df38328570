"""Change notifications: tables whose writes wake node agents (LISTEN/NOTIFY)."""

from django.db import migrations

CHANNEL = "station_changes"


def notify_on_change(table: str) -> migrations.RunSQL:
    """A migration operation that makes every write to ``table`` NOTIFY the agents."""
    trigger = f"{table}_notify_change"
    return migrations.RunSQL(
        f"CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION station_notify_change();",
        f"DROP TRIGGER IF EXISTS {trigger} ON {table};",
    )
