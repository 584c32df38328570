from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class StationConfig(AppConfig):
    name = "station"
    verbose_name = _("Station")

    def ready(self):
        from station import signals  # noqa: F401  (connects the timeline's receivers)
