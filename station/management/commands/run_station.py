from django.core.management import call_command
from django.core.management.base import BaseCommand

from station import launcher
from station.demo import DEMO_PASSWORD, DEMO_STREAM_PORT, DEMO_USERNAME


class Command(BaseCommand):
    help = "Migrate, seed the demo station and run web, django-q2 and this machine's node agent until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-demo", action="store_true", help="Do not create the demo station.")
        parser.add_argument("--node", default="demo-node", help="Name of this machine's node agent.")

    def handle(self, *args, host, port, no_demo, node, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("createcachetable", verbosity=0)  # failed logins are counted there without Redis
        call_command("setup_schedules", verbosity=0)
        if not no_demo:
            call_command("seed_demo")
        base = f"http://{host}:{port}"

        def announce():
            self.stdout.write(
                self.style.SUCCESS("Stationkeeper is running.")
                + f"\n  Admin:   {base}/admin/"
                + f"\n  Live:    {base}/dashboard/  (the on-air desk's dashboard)"
                + f"\n  API:     {base}/api/v1/  (docs: {base}/api/docs/)"
                + f"\n  Health:  {base}/healthz  {base}/readyz"
                + (f"\n  Login:   {DEMO_USERNAME} / {DEMO_PASSWORD}" if not no_demo else "")
                + (f"\n  Stream:  http://{host}:{DEMO_STREAM_PORT}/demo  (Demo FM, Liquidsoap)" if not no_demo else "")
                + "\n  Stop:    Ctrl-C"
            )
            self.stdout.flush()

        raise SystemExit(launcher.run(launcher.station_processes(host=host, port=port, node=node), ready_url=f"{base}/readyz", on_ready=announce))
