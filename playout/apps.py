from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PlayoutConfig(AppConfig):
    name = "playout"
    verbose_name = _("Playout")

    def ready(self):
        from ingest.signals import asset_replaced
        from playout.calendars import SOURCE as CALENDARS
        from playout.models import Channel, ShowInstance
        from playout.services import asset_replaced_in_upcoming_shows
        from station.calendars import register_source
        from station.signals import announce_timeline_edits

        asset_replaced.connect(asset_replaced_in_upcoming_shows, dispatch_uid="playout.asset_replaced")
        announce_timeline_edits(Channel)
        announce_timeline_edits(ShowInstance, owner="channel")
        register_source(CALENDARS)
