"""A trigger function that NOTIFYs node agents of row changes, delivered at commit.

Agents LISTEN on the ``station_changes`` channel; the payload is
``<table>:<id>``. Triggers catch every write — admin, API, services, bulk
updates, SQL by hand — so no change can slip past the agents.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION station_notify_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('station_changes', TG_TABLE_NAME || ':' || COALESCE(NEW.id, OLD.id)::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""
DROP = "DROP FUNCTION IF EXISTS station_notify_change();"


class Migration(migrations.Migration):
    dependencies = [("station", "0001_initial")]
    operations = [migrations.RunSQL(CREATE, DROP)]
