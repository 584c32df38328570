"""Backups of the station, its database and its media in one file, and their restore into a running station.

A backup is one uncompressed tar file, ``stationkeeper-<UTC time>.tar`` (media are mostly audio,
already compressed, and pg_dump's custom format compresses itself):

- ``database.dump``: pg_dump's custom format, taken in one snapshot;
- ``media/<path>``: every file under MEDIA_ROOT but what can be made again (PLAYOUT_CACHE_ROOT, backups,
  a restore's own directories), copied after the snapshot, so every file the dump names is there
  unless it was deleted meanwhile;
- ``manifest.json``, last: the migrations the dumped database had, each file's size and SHA-256.

It is written in a hidden directory beside its destination and renamed into place when whole, so a
file with a backup's name is always a complete backup.

A restore extracts and checks everything before it changes anything: a missing, cut, damaged or
newer backup is refused, and the station is left as it was. It restores the dump into a new
database, migrates it to this code, then swaps it in place of the station's database in one
transaction, after ending that database's sessions (the processes reconnect by themselves). The
database and the media as they were are kept, renamed, never deleted.
"""

import contextlib
import dataclasses
import hashlib
import importlib.util
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connection, connections, transaction
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from psycopg import sql

from station.errors import UserError

FORMAT = "stationkeeper-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE_DUMP = "database.dump"
MEDIA = "media/"
# A restore's working and kept directories in MEDIA_ROOT, and a backup's beside its file: never media.
OWN_PREFIX = ".stationkeeper-"
SWAP_WAIT_SECONDS = 10  # for the sessions of the database being replaced to end
COPY_CHUNK = 1 << 20
POSTGRES_NAME_BYTES = 63


@dataclasses.dataclass(frozen=True)
class Restored:
    """What a restore put in place, and where the station as it was is kept."""

    database: str
    media_files: int
    previous_database: str
    previous_media: Path | None  # None: there was no media to keep


@dataclasses.dataclass(frozen=True)
class PostgresTools:
    """pg_dump and pg_restore of one PostgreSQL release."""

    directory: Path
    major: int

    def run(self, tool: str, *, database: str, arguments: list[str]) -> None:
        """Run ``tool`` on ``database`` of the station's server, connected as Django connects (CalledProcessError)."""
        # Django's own psql arguments and environment (host, port, user, password, SSL, service); its
        # trailing database name becomes the value of the closing --dbname.
        args, env = connection.client.settings_to_cmd_args_env({**connection.settings_dict, "NAME": database},
                                                               [*arguments, "--dbname"])
        subprocess.run([str(self.directory / tool), *args[1:]], env={**os.environ, **(env or {})},
                       capture_output=True, text=True, check=True)


def postgres_tools(*, server_major: int) -> PostgresTools:
    """The newest pg_dump and pg_restore on this machine, if at least as new as the server (older ones refuse it)."""
    usable = [tools for tools in map(_tools_in, _tool_directories()) if tools and tools.major >= server_major]
    if not usable:
        raise UserError("backup_tools_missing",
                        _("No pg_dump and pg_restore as new as the database server (PostgreSQL %(version)s) are "
                          "installed here: install its client programs (Debian: postgresql-client-%(version)s)."),
                        {"version": server_major})
    return max(usable, key=lambda tools: tools.major)


def _tool_directories() -> Iterator[Path]:
    pgserver = importlib.util.find_spec("pgserver")  # found, not imported
    if pgserver is not None and pgserver.submodule_search_locations:
        yield Path(pgserver.submodule_search_locations[0]) / "pginstall" / "bin"  # the embedded server's own
    yield from sorted(Path("/usr/lib/postgresql").glob("*/bin"))  # Debian's and Ubuntu's, one per release
    if on_path := shutil.which("pg_dump"):
        yield Path(on_path).parent


def _tools_in(directory: Path) -> PostgresTools | None:
    if not (directory / "pg_dump").is_file() or not (directory / "pg_restore").is_file():
        return None
    try:
        version = subprocess.run([str(directory / "pg_dump"), "--version"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\)\s+(\d+)", version)  # "pg_dump (PostgreSQL) 16.2"
    return PostgresTools(directory=directory, major=int(found[1])) if found else None


def backup_create(*, directory: Path, keep: int | None = None) -> Path:
    """Write a backup of the database and the media into ``directory`` and return it; keep the ``keep`` newest there."""
    directory.mkdir(parents=True, exist_ok=True)
    created_at = timezone.now()
    path = directory / f"stationkeeper-{created_at:%Y%m%dT%H%M%SZ}.tar"
    if path.exists():
        raise UserError("backup_exists", _("%(path)s already exists: back up again in a second."), {"path": str(path)})
    tools = postgres_tools(server_major=connection.pg_version // 10000)
    try:
        with tempfile.TemporaryDirectory(dir=directory, prefix=f"{OWN_PREFIX}backup-") as work:
            dump = Path(work) / DATABASE_DUMP
            migrations = _dump_database(tools=tools, into=dump)
            partial = Path(work) / path.name
            with partial.open("wb") as out:
                _write_archive(out, dump=dump, skipping=[directory], manifest={
                    "format": FORMAT, "version": FORMAT_VERSION, "created_at": created_at.isoformat(),
                    "database": connection.settings_dict["NAME"], "server_version": connection.pg_version,
                    "migrations": migrations})
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
    except OSError as error:
        raise UserError("backup_write_failed", _("The backup could not be made in %(directory)s: %(reason)s."),
                        {"directory": str(directory), "reason": str(error)}, inner=error) from error
    _sync_directory(directory)
    if keep:
        for old in sorted(directory.glob("stationkeeper-*.tar"))[:-keep]:  # names sort by time
            old.unlink()
    return path


def _dump_database(*, tools: PostgresTools, into: Path) -> list[str]:
    """Dump the database into ``into`` and return the migrations applied in the very snapshot dumped."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT pg_export_snapshot()")
        [snapshot] = cursor.fetchone()
        cursor.execute("SELECT app, name FROM django_migrations ORDER BY id")
        migrations = [f"{app}.{name}" for app, name in cursor.fetchall()]
        try:
            tools.run("pg_dump", database=connection.settings_dict["NAME"],
                      arguments=["--format=custom", f"--snapshot={snapshot}", f"--file={into}"])
        except subprocess.CalledProcessError as error:
            raise UserError("backup_dump_failed", _("pg_dump could not dump the database: %(reason)s"),
                            {"reason": _last_line(error.stderr)}, inner=error) from error
    return migrations


def _write_archive(out, *, dump: Path, skipping: list[Path], manifest: dict) -> None:
    media_root = Path(settings.MEDIA_ROOT)
    files = {}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        files[DATABASE_DUMP] = _add_file(archive, dump, name=DATABASE_DUMP)
        for relative in _media_files(skipping=skipping):
            with contextlib.suppress(FileNotFoundError):  # deleted since it was listed: the station no longer has it
                files[MEDIA + relative] = _add_file(archive, media_root / relative, name=MEDIA + relative)
        data = json.dumps({**manifest, "files": files}, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime = len(data), int(time.time())
        archive.addfile(info, io.BytesIO(data))


def _add_file(archive: tarfile.TarFile, path: Path, *, name: str) -> dict:
    """Add the file's first bytes, as many as it had when opened (a recording grows as it is read); return its entry."""
    with path.open("rb") as file:
        info = archive.gettarinfo(fileobj=file, arcname=name)
        reader = _Hashing(file, info.size)
        try:
            archive.addfile(info, reader)
        except OSError as error:
            if not reader.left:
                raise
            raise UserError("backup_media_changed", _("%(file)s shrank while it was backed up: back up again."),
                            {"file": str(path)}, inner=error) from error
    return {"size": info.size, "sha256": reader.sha256.hexdigest()}


class _Hashing:
    """A reader of at most ``size`` bytes of ``file`` that hashes what it hands out."""

    def __init__(self, file, size: int):
        self.file, self.left, self.sha256 = file, size, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self.file.read(self.left if size < 0 else min(size, self.left))
        self.left -= len(chunk)
        self.sha256.update(chunk)
        return chunk


def _media_files(*, skipping: Iterable[Path] = ()) -> Iterator[str]:
    """The station's media: MEDIA_ROOT's files, relative to it, but caches, backups and a restore's own directories."""
    root = Path(settings.MEDIA_ROOT)
    skipped = {Path(directory).resolve()
               for directory in (settings.PLAYOUT_CACHE_ROOT, settings.BACKUP_ROOT, *skipping)}
    for directory, subdirectories, names in os.walk(root):
        here = Path(directory)
        subdirectories[:] = sorted(name for name in subdirectories
                                   if not name.startswith(OWN_PREFIX) and (here / name).resolve() not in skipped)
        for name in sorted(names):
            path = here / name
            if not name.startswith(OWN_PREFIX) and path.is_file() and not path.is_symlink():
                yield path.relative_to(root).as_posix()


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` survive a power cut."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def backup_restore(*, path: Path) -> Restored:
    """Put the station (database and media) back as the backup at ``path`` has it, while its processes run.

    Nothing is changed until the whole backup is extracted and checked and its database restored
    and migrated beside the station's; the database and media it replaces are kept, renamed.
    """
    media_root = Path(settings.MEDIA_ROOT)
    media_root.mkdir(parents=True, exist_ok=True)
    # On the media's disk, so that putting the restored media in place is a rename per file.
    staging = Path(tempfile.mkdtemp(dir=media_root, prefix=f"{OWN_PREFIX}restoring-"))
    try:
        manifest = _unpack(path, into=staging)
        _check_schema(manifest, backup=path)
        current = connection.settings_dict["NAME"]
        stamp = f"{timezone.now():%Y%m%d%H%M%S}"
        with _server_connection() as server:
            tools = postgres_tools(server_major=server.info.server_version // 10000)
            restored = _restore_database(server, tools=tools, dump=staging / DATABASE_DUMP, like=current)
            try:
                previous = _swap_databases(server, current=current, restored=restored, stamp=stamp)
            except BaseException:
                _drop_database(server, restored)
                raise
        previous_media = _swap_media(staging / MEDIA, stamp=stamp)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Restored(database=current, media_files=sum(name.startswith(MEDIA) for name in manifest["files"]),
                    previous_database=previous, previous_media=previous_media)


def _unpack(path: Path, *, into: Path) -> dict:
    """Extract the backup into ``into`` and return its manifest, once every file is checked against it."""
    if not path.is_file():
        raise UserError("backup_missing", _("There is no backup at %(path)s."), {"path": str(path)})
    try:
        archive = tarfile.open(path, mode="r:")
    except tarfile.TarError as error:
        raise UserError("backup_unreadable", _("%(path)s is not a Stationkeeper backup (%(reason)s)."),
                        {"path": str(path), "reason": str(error)}, inner=error) from error
    found, manifest = {}, None
    with archive:
        try:
            for member in archive:
                if member.name == MANIFEST and member.isfile():
                    manifest = _parse_manifest(archive.extractfile(member).read(), backup=path)
                    continue
                target = into.joinpath(*_media_or_dump(member, backup=path).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                reader = _Hashing(archive.extractfile(member), member.size)
                with target.open("wb") as out:
                    shutil.copyfileobj(reader, out, COPY_CHUNK)
                os.utime(target, (member.mtime, member.mtime))
                found[member.name] = {"size": member.size, "sha256": reader.sha256.hexdigest()}
        except tarfile.TarError as error:  # the file ends inside a member
            raise UserError("backup_incomplete",
                            _("The backup %(path)s is cut short (%(reason)s): it was not completely written or "
                              "copied."),
                            {"path": str(path), "reason": str(error)}, inner=error) from error
        except OSError as error:  # a full disk, most likely
            raise UserError("backup_unpack_failed",
                            _("The backup %(path)s could not be extracted (%(reason)s); nothing was restored."),
                            {"path": str(path), "reason": str(error)}, inner=error) from error
    if manifest is None:
        raise UserError("backup_incomplete",
                        _("The backup %(path)s has no manifest: it was not completely written or copied."),
                        {"path": str(path)})
    for name, entry in manifest["files"].items():
        if name not in found:
            raise UserError("backup_incomplete", _("The backup %(path)s lacks %(file)s."),
                            {"path": str(path), "file": name})
        if found.pop(name) != {"size": entry.get("size"), "sha256": entry.get("sha256")}:
            raise UserError("backup_corrupt",
                            _("The backup %(path)s is damaged: %(file)s does not match its checksum."),
                            {"path": str(path), "file": name})
    if found:
        raise UserError("backup_corrupt", _("The backup %(path)s holds %(file)s, which its manifest does not list."),
                        {"path": str(path), "file": min(found)})
    return manifest


def _media_or_dump(member: tarfile.TarInfo, *, backup: Path) -> PurePosixPath:
    """The member's path if it is the dump or a media file (a plain file inside media/), else refuse the backup."""
    relative = PurePosixPath(member.name)
    if member.isfile() and not relative.is_absolute() and ".." not in relative.parts and (
            member.name == DATABASE_DUMP or (relative.parts[0] == MEDIA.rstrip("/") and len(relative.parts) > 1)):
        return relative
    raise UserError("backup_unreadable", _("%(path)s is not a Stationkeeper backup: it holds %(member)s."),
                    {"path": str(backup), "member": member.name})


def _parse_manifest(data: bytes, *, backup: Path) -> dict:
    try:
        manifest = json.loads(data)
    except ValueError:
        manifest = None
    if not (isinstance(manifest, dict) and manifest.get("format") == FORMAT
            and isinstance(manifest.get("files"), dict) and DATABASE_DUMP in manifest["files"]
            and isinstance(manifest.get("migrations"), list)):
        raise UserError("backup_unreadable", _("%(path)s is not a Stationkeeper backup: its manifest is not one."),
                        {"path": str(backup)})
    if manifest.get("version") != FORMAT_VERSION:
        raise UserError("backup_format_unknown",
                        _("The backup %(path)s is in format %(version)s, which this version of Stationkeeper "
                          "does not read."),
                        {"path": str(backup), "version": manifest.get("version")})
    return manifest


def _check_schema(manifest: dict, *, backup: Path) -> None:
    """Refuse a database migrated further than this code knows; an older one is migrated once restored."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    known = {f"{app}.{name}" for app, name in loader.disk_migrations}
    known |= {f"{app}.{name}" for migration in loader.disk_migrations.values() for app, name in migration.replaces}
    # Rows of apps no longer installed are left alone, by Django as here.
    unknown = sorted(name for name in manifest["migrations"]
                     if name not in known and name.partition(".")[0] in loader.migrated_apps)
    if unknown:
        raise UserError("backup_newer_schema",
                        _("The backup %(path)s comes from a newer Stationkeeper: its database has migrations this "
                          "version does not know (%(migrations)s). Install that version, then restore."),
                        {"path": str(backup), "migrations": ", ".join(unknown[:5])})


def _server_connection() -> psycopg.Connection:
    """A connection to the server's ``postgres`` database, for work on the station's database as a whole."""
    params = {key: value for key, value in connection.get_connection_params().items() if key != "cursor_factory"}
    return psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True)


@contextlib.contextmanager
def _permission_needed(database: str) -> Iterator[None]:
    try:
        yield
    except psycopg.errors.InsufficientPrivilege as error:
        raise UserError("backup_not_permitted",
                        _("Restoring needs a database role that owns %(database)s and may create databases "
                          "(CREATEDB); the server said: %(reason)s"),
                        {"database": database, "reason": str(error)}, inner=error) from error


def _restore_database(server: psycopg.Connection, *, tools: PostgresTools, dump: Path, like: str) -> str:
    """Restore the dump into a new database made like ``like``, migrate it to this code and return its name."""
    shape = server.execute("SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype "
                           "FROM pg_database WHERE datname = %s", [like]).fetchone()
    if shape is None:
        raise UserError("backup_no_database",
                        _("The database %(database)s does not exist: create it (empty), then restore."),
                        {"database": like})
    restored = _sibling_name(like, f"restoring_{secrets.token_hex(4)}")
    owner, encoding, collate, ctype = shape
    with _permission_needed(like):
        server.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}")
                       .format(sql.Identifier(restored), sql.Identifier(owner), sql.Literal(encoding),
                               sql.Literal(collate), sql.Literal(ctype)))
    try:
        tools.run("pg_restore", database=restored, arguments=["--exit-on-error", "--single-transaction", str(dump)])
        with _connected_to(restored):
            call_command("migrate", interactive=False, verbosity=0)
    except (subprocess.CalledProcessError, DatabaseError) as error:
        _drop_database(server, restored)
        reason = _last_line(error.stderr) if isinstance(error, subprocess.CalledProcessError) else str(error)
        raise UserError("backup_restore_failed",
                        _("The backup's database could not be restored (%(reason)s); the station's database is "
                          "unchanged."),
                        {"reason": reason}, inner=error) from error
    except BaseException:
        _drop_database(server, restored)
        raise
    return restored


@contextlib.contextmanager
def _connected_to(database: str) -> Iterator[None]:
    """Point this process's default connection at another database of the same server for the block."""
    station_database = connection.settings_dict["NAME"]
    connection.close()
    connection.close_pool()  # a pool would keep connecting where it did
    connection.settings_dict["NAME"] = database
    try:
        yield
    finally:
        connection.close()
        connection.close_pool()
        connection.settings_dict["NAME"] = station_database


def _swap_databases(server: psycopg.Connection, *, current: str, restored: str, stamp: str) -> str:
    """Put ``restored`` in ``current``'s place in one transaction; return the name ``current`` is kept under.

    A database in use can't be renamed: ``current`` first refuses new sessions, then its sessions are
    ended. The station's processes reconnect by themselves, to the restored database.
    """
    previous = _sibling_name(current, f"before_restore_{stamp}")
    connections.close_all()  # this process's own sessions
    with _permission_needed(current):
        server.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(current)))
        swapped = False
        try:
            deadline = time.monotonic() + SWAP_WAIT_SECONDS
            while not swapped:
                # Client sessions only: renaming ends the autovacuum workers itself.
                server.execute("SELECT pg_terminate_backend(pid, 1000) FROM pg_stat_activity "
                               "WHERE datname = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                               [current])
                try:
                    with server.transaction():
                        server.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(current), sql.Identifier(previous)))
                        server.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(restored), sql.Identifier(current)))
                    swapped = True
                except psycopg.errors.ObjectInUse as error:
                    if time.monotonic() > deadline:
                        raise UserError("backup_database_busy",
                                        _("The database %(database)s still had sessions after %(seconds)s s; nothing "
                                          "was restored."), {"database": current, "seconds": SWAP_WAIT_SECONDS},
                                        inner=error) from error
                    time.sleep(0.1)
        finally:  # the kept database can be looked into; a refused swap leaves the station's as it was
            server.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(
                sql.Identifier(previous if swapped else current)))
    return previous


def _drop_database(server: psycopg.Connection, name: str) -> None:
    server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _sibling_name(database: str, suffix: str) -> str:
    """``<database>_<suffix>``, the name cut to PostgreSQL's 63 bytes so that the suffix stays whole."""
    room = POSTGRES_NAME_BYTES - len(suffix.encode()) - 1
    return f"{database.encode()[:room].decode(errors='ignore')}_{suffix}"


def _swap_media(restored: Path, *, stamp: str) -> Path | None:
    """Move the current media aside (kept) and the restored media into MEDIA_ROOT, a rename per file."""
    media_root = Path(settings.MEDIA_ROOT)
    previous = media_root / f"{OWN_PREFIX}before-restore-{stamp}"
    emptied = set()
    for relative in list(_media_files()):
        _move(media_root / relative, previous / relative)
        emptied.add((media_root / relative).parent)
    for directory, _subdirectories, names in os.walk(restored):
        for name in names:
            source = Path(directory) / name
            _move(source, media_root / source.relative_to(restored))
    for directory in sorted(emptied, key=lambda path: len(path.parts), reverse=True):
        while directory != media_root:  # directories the restored media don't use again
            try:
                directory.rmdir()
            except OSError:
                break
            directory = directory.parent
    return previous if previous.exists() else None


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, target)  # a rename, or a copy where a mount point lies between


def _last_line(output: str | None) -> str:
    lines = [line for line in (output or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
