from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RecordersConfig(AppConfig):
    name = "recorders"
    verbose_name = _("Recorders")
