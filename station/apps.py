from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class StationConfig(AppConfig):
    name = "station"
    verbose_name = _("Station")

    def ready(self):
        from django.db.backends.signals import connection_created
        from django_q.signals import pre_execute

        from station import metrics, queues, startup
        from station.dashboard import studio_timeline
        from station.db import read_instants_in_c
        from station.signals import announcer

        connection_created.connect(read_instants_in_c, dispatch_uid="station.read_instants_in_c")
        announcer.build = studio_timeline  # the project's timeline reads every app: the kernel's announcer is handed it
        pre_execute.connect(queues.job_picked_up, dispatch_uid="station.job_picked_up")
        # A cluster's main process, before it forks its workers; an agent, before its loop starts.
        metrics.serve(role=startup.role)
