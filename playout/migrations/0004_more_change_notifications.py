from django.db import migrations

from station.notify import notify_on_change


class Migration(migrations.Migration):
    dependencies = [("playout", "0003_change_notifications")]
    operations = [notify_on_change("playout_show"), notify_on_change("playout_playlistitem")]
