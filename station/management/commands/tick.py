from django.core.management.base import BaseCommand

from recorders import tasks


class Command(BaseCommand):
    help = "Run the housekeeping tick in the foreground (one replica at a time), e.g. without django-q2."

    def add_arguments(self, parser):
        parser.add_argument("--for", dest="seconds", type=float, default=60.0, help="How long to run (s).")

    def handle(self, *args, seconds, **options):
        tasks.tick(run_for=seconds, hand_over=False, wait=seconds)
