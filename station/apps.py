from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class StationConfig(AppConfig):
    name = "station"
    verbose_name = _("Station")

    def ready(self):
        from django.db.backends.signals import connection_created

        from station import signals  # noqa: F401  (connects the timeline's receivers)
        from station.db import read_instants_in_c

        connection_created.connect(read_instants_in_c, dispatch_uid="station.read_instants_in_c")
