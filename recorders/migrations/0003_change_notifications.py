from django.db import migrations

from station.notify import notify_on_change


class Migration(migrations.Migration):
    dependencies = [("recorders", "0002_series_anchor"), ("station", "0002_change_notifications")]
    operations = [
        notify_on_change(
            "recorders_recorderschedule",
            columns=("status", "start_at", "end_at", "recorder_id", "claimed_by"),
        ),
        notify_on_change("recorders_recorder"),
    ]
