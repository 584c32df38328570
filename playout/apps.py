from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PlayoutConfig(AppConfig):
    name = "playout"
    verbose_name = _("Playout")
