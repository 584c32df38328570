from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from station.backup import backup_restore
from station.errors import UserError


class Command(BaseCommand):
    help = ("Put the station back as a backup has it, while it runs; the database and media it replaces are kept "
            "(docs/deploy.md, \"Backup and restore\").")

    def add_arguments(self, parser):
        parser.add_argument("backup", type=Path, help="The backup file (stationkeeper-….tar).")
        parser.add_argument("--no-input", "--noinput", action="store_false", dest="interactive",
                            help="Do not ask for confirmation.")

    def handle(self, *args, backup, interactive, **options):
        database = connection.settings_dict["NAME"]
        if interactive and input(
                f"This replaces the database {database} and the media in {settings.MEDIA_ROOT} with {backup}; "
                "what they hold now is kept aside. Type 'yes' to continue: ") != "yes":
            raise CommandError("Restore cancelled.")
        try:
            restored = backup_restore(path=backup)
        except UserError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Restored {backup}: the database {restored.database} and "
                          f"{restored.media_files} media files.")
        self.stdout.write(f"The database as it was is kept as {restored.previous_database} "
                          f"(DROP DATABASE \"{restored.previous_database}\" once you no longer need it).")
        if restored.previous_media:
            self.stdout.write(f"The media as they were are kept in {restored.previous_media}.")
