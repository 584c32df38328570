import socket
import sys

from django.core.management.base import BaseCommand

from station.agent import REPLACED_EXIT_STATUS, NodeAgent


class Command(BaseCommand):
    help = "Run the node agent for this media host: records (ffmpeg) and plays out on time."

    def add_arguments(self, parser):
        parser.add_argument("--name", default=socket.gethostname(), help="Node name (default: host name).")

    def handle(self, *args, name, **options):
        agent = NodeAgent(name=name)
        agent.run()
        if agent.replaced:
            sys.exit(REPLACED_EXIT_STATUS)
