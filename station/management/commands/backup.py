from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from station.backup import backup_create
from station.errors import UserError


class Command(BaseCommand):
    help = "Back up the database and the media into one file (docs/deploy.md, \"Backup and restore\")."

    def add_arguments(self, parser):
        parser.add_argument("--to", type=Path, default=None, help="Directory to write it to (default: BACKUP_ROOT).")
        parser.add_argument("--keep", type=int, default=None,
                            help="Then delete all but this many newest backups in that directory.")

    def handle(self, *args, to, keep, **options):
        if keep is not None and keep < 1:
            raise CommandError("--keep must be at least 1.")
        try:
            path = backup_create(directory=to or settings.BACKUP_ROOT, keep=keep)
        except UserError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(str(path))
