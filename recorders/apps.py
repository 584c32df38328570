from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RecordersConfig(AppConfig):
    name = "recorders"
    verbose_name = _("Recorders")

    def ready(self):
        from recorders.calendars import SOURCE as CALENDARS
        from recorders.models import Recorder, RecorderSchedule
        from station.calendars import register_source
        from station.signals import announce_timeline_edits

        announce_timeline_edits(Recorder)
        announce_timeline_edits(RecorderSchedule, owner="recorder")
        register_source(CALENDARS)
