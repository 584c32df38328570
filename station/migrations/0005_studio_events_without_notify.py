from django.db import migrations


class Migration(migrations.Migration):
    """Dashboards hear events on the channel layer now; nothing listens for studio_events any more."""

    dependencies = [
        ("station", "0004_webhooks"),
    ]

    operations = [
        migrations.RunSQL(
            """
            DROP TRIGGER IF EXISTS station_studioevent_notify ON station_studioevent;
            DROP FUNCTION IF EXISTS station_studio_event_notify();
            """,
            """
            CREATE FUNCTION station_studio_event_notify() RETURNS trigger AS $$
            BEGIN
              PERFORM pg_notify('studio_events', NEW.id::text);
              RETURN NULL;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER station_studioevent_notify AFTER INSERT ON station_studioevent
              FOR EACH ROW EXECUTE FUNCTION station_studio_event_notify();
            """,
        ),
    ]
