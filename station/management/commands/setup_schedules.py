from django.core.management.base import BaseCommand

from station.schedules import setup_schedules


class Command(BaseCommand):
    help = "Declare the periodic django-q2 jobs (idempotent) and make them run at cluster start."

    def handle(self, *args, **options):
        for name in setup_schedules():
            self.stdout.write(f"scheduled {name}")
