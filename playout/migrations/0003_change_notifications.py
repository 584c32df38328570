from django.db import migrations

from station.notify import notify_on_change


class Migration(migrations.Migration):
    dependencies = [("playout", "0002_series_anchor"), ("station", "0002_change_notifications")]
    operations = [
        notify_on_change("playout_channel", columns=("status", "node_id", "fallback_playlist_id", "output_type", "output_settings", "paused")),
        notify_on_change("playout_scheduleditem"),
        notify_on_change("playout_showinstance"),
    ]
