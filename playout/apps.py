from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PlayoutConfig(AppConfig):
    name = "playout"
    verbose_name = _("Playout")

    def ready(self):
        from ingest.signals import asset_replaced
        from playout.services import asset_replaced_in_upcoming_shows

        asset_replaced.connect(asset_replaced_in_upcoming_shows, dispatch_uid="playout.asset_replaced")
