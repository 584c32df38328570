from django.core.management.base import BaseCommand

from station.demo import DEMO_PASSWORD, DEMO_USERNAME, seed_demo


class Command(BaseCommand):
    help = "Create the demo station (idempotent): a studio, node, recorder, channel, tones, show and schedule."

    def handle(self, *args, **options):
        studio = seed_demo()
        self.stdout.write(f"Demo station ready: {studio.name}. Login: {DEMO_USERNAME} / {DEMO_PASSWORD}")
