from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string

from station.schedules import PERIODIC_JOBS


class Command(BaseCommand):
    help = "Run a periodic job in the foreground (one replica at a time), e.g. without django-q2."

    def add_arguments(self, parser):
        parser.add_argument("--job", choices=sorted(PERIODIC_JOBS), default="recorders.tick")
        parser.add_argument("--for", dest="seconds", type=float, default=60.0, help="How long to run (s).")

    def handle(self, *args, job, seconds, **options):
        import_string(PERIODIC_JOBS[job].func)(run_for=seconds, hand_over=False, wait=seconds)
