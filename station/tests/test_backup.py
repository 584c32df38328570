"""Backups (station.backup): a round trip that restores a running station, and damaged backups refused whole."""

import hashlib
import io
import json
import os
import signal
import tarfile
from pathlib import Path

import psycopg
import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token

from ingest.models import MediaAsset
from playout.models import Channel, Show, ShowInstance
from recorders.models import Recorder, RecorderSchedule
from station.backup import DATABASE_DUMP, MANIFEST, MEDIA, OWN_PREFIX, backup_create, backup_restore, postgres_tools
from station.errors import UserError
from station.models import Node, Studio, StudioMembership
from station.signals import announcer
from station.tests.factories import (ChannelFactory, MediaAssetFactory, RecorderFactory, ScheduleFactory,
                                     ShowInstanceFactory, member_of)
from station.tests.processes import (WebServer, database_env, spawn_manage, stop, wait_for_other_sessions_to_end,
                                     wait_until)

pytestmark = pytest.mark.django_db(transaction=True)  # pg_dump and the station's processes see committed rows only
STATION_MODELS = [Studio, get_user_model(), StudioMembership, Token, Recorder, RecorderSchedule, Channel, Show,
                  ShowInstance, MediaAsset]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _station(media_root: Path) -> Studio:
    """A studio with recorders, windows, a channel and its show, and media assets whose files are on disk."""
    channel = ChannelFactory(name="FM One")
    studio = channel.studio
    Token.objects.create(user=member_of(studio, username="operator"))
    ScheduleFactory(recorder=RecorderFactory(studio=studio, name="Studio mic"), name="Morning show")
    ShowInstanceFactory(show__channel=channel, show__name="Drive time")
    files = {f"library/uploads/studio-{studio.pk}/jingle.mp3": b"ID3" + os.urandom(40_000),
             f"recordings/studio-{studio.pk}/schedule-1/morning show.wav": os.urandom(300_000),
             f"library/uploads/studio-{studio.pk}/news.mp3": b"ID3" + os.urandom(90_000)}
    for relative, data in files.items():
        (media_root / relative).parent.mkdir(parents=True, exist_ok=True)
        (media_root / relative).write_bytes(data)
        MediaAssetFactory(studio=studio, title=Path(relative).stem, file=relative, checksum=_sha256(data),
                          size_bytes=len(data))
    announcer.wait_idle()  # the timeline events of these edits are written before anything is backed up
    return studio


def _rows() -> dict:
    return {model._meta.label: list(model.objects.order_by("pk").values()) for model in STATION_MODELS}


def _files(root: Path) -> dict[str, str]:
    """Each file under ``root`` (a restore's kept directories left out) and its checksum."""
    return {path.relative_to(root).as_posix(): _sha256(path.read_bytes()) for path in sorted(root.rglob("*"))
            if path.is_file() and not path.relative_to(root).parts[0].startswith(OWN_PREFIX)}


def _connect(database: str) -> psycopg.Connection:
    """A connection of its own to another database of the test server."""
    params = {key: value for key, value in connection.get_connection_params().items() if key != "cursor_factory"}
    return psycopg.connect(**{**params, "dbname": database}, autocommit=True)


def _siblings() -> list[str]:
    """Databases beside the test database that a restore made (kept or left behind)."""
    with _connect("postgres") as server:
        return [name for (name,) in server.execute("SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1",
                                                   [connection.settings_dict["NAME"] + "\\_%"])]


@pytest.fixture
def kept_databases():
    """Drop the databases restores keep beside the test database, whatever the test's outcome."""
    yield
    with _connect("postgres") as server:
        for name in _siblings():
            server.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def running_station():
    """A web process (pooled connections, as run_station serves) and a node agent on the test database."""
    web = WebServer()
    web.start(DATABASE_POOL_SIZE=2)
    agent = spawn_manage("run_node", "--name", "backup-node", env=database_env())
    yield web
    stop(web.process, agent)
    wait_for_other_sessions_to_end()


def _api(web: WebServer, path: str, *, token: str) -> requests.Response:
    return requests.get(f"{web.url}/api/v1/{path}", headers={"Authorization": f"Token {token}"}, timeout=5)


@pytest.mark.slow
def test_a_restore_puts_a_running_station_back_exactly_as_backed_up(media_root, tmp_path, running_station,
                                                                   kept_databases):
    web = running_station
    studio = _station(media_root)
    token = Token.objects.get().key
    jingle = MediaAsset.objects.get(title="jingle")
    wait_until(lambda: Node.objects.filter(name="backup-node").exists(), timeout=30, message="the agent's node")
    rows, files, listed = _rows(), _files(media_root), _api(web, "media/?ordering=title", token=token).json()

    call_command("backup", "--to", str(tmp_path / "backups"), stdout=io.StringIO())
    [backup] = (tmp_path / "backups").glob("stationkeeper-*.tar")

    Studio.objects.filter(pk=studio.pk).update(name="Renamed after the backup")
    RecorderSchedule.objects.all().delete()
    news = MediaAsset.objects.get(title="news")
    news.delete()
    (media_root / news.file.name).unlink()
    (media_root / jingle.file.name).write_bytes(b"another jingle")
    (media_root / "library" / "stray.mp3").write_bytes(b"not in the backup")
    announcer.wait_idle()
    assert len(_api(web, "media/", token=token).json()["results"]) == 2  # the running web sees the change

    restore_began = timezone.now()
    call_command("restore", str(backup), "--no-input", stdout=io.StringIO())

    # The running web process reconnects by itself (its pooled sessions were ended) and serves the backup's rows
    # and files.
    assert wait_until(lambda: _api(web, "media/?ordering=title", token=token).json() == listed, timeout=10)
    assert requests.get(f"{web.url}/readyz", timeout=5).json() == {"status": "ok"}
    downloaded = _api(web, f"media/{jingle.pk}/download/", token=token).content
    assert _sha256(downloaded) == files[jingle.file.name]
    assert _rows() == rows
    assert _files(media_root) == files
    # The node agent reconnects too, and heartbeats into the restored database.
    wait_until(lambda: Node.objects.filter(name="backup-node", last_heartbeat_at__gt=restore_began).exists(),
               timeout=30, message="the agent's heartbeat after the restore")
    # What the restore replaced is kept: the database renamed, the media in a directory of their own.
    [kept] = _siblings()
    with _connect(kept) as kept_database:
        assert kept_database.execute("SELECT name FROM station_studio").fetchall() == [("Renamed after the backup",)]
    [kept_media] = media_root.glob(f"{OWN_PREFIX}before-restore-*")
    assert (kept_media / "library" / "stray.mp3").read_bytes() == b"not in the backup"
    assert (kept_media / jingle.file.name).read_bytes() == b"another jingle"


def _rewritten(path: Path, change) -> None:
    """Write the backup again, each member's bytes through ``change(name, data)`` (None leaves the member out)."""
    with tarfile.open(path) as archive:
        members = [(member, archive.extractfile(member).read()) for member in archive]
    with tarfile.open(path, "w") as archive:
        for member, data in members:
            if (data := change(member.name, data)) is not None:
                member.size = len(data)
                archive.addfile(member, io.BytesIO(data))


def _manifest_changed(path: Path, edit) -> None:
    def change(name, data):
        if name != MANIFEST:
            return data
        manifest = json.loads(data)
        edit(manifest)
        return json.dumps(manifest).encode()
    _rewritten(path, change)


def _member_data_at(path: Path, name: str) -> int:
    """Where the middle of the member's bytes lies in the file."""
    with tarfile.open(path) as archive:
        member = archive.getmember(name)
        return member.offset_data + member.size // 2


def _dump_byte_flipped(path: Path) -> None:
    offset = _member_data_at(path, DATABASE_DUMP)
    with path.open("r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0xFF]))


def _cut_in_a_media_file(path: Path) -> None:
    with tarfile.open(path) as archive:
        last_media = [member.name for member in archive if member.name.startswith(MEDIA)][-1]
    os.truncate(path, _member_data_at(path, last_media))


def _manifest_left_out(path: Path) -> None:
    _rewritten(path, lambda name, data: None if name == MANIFEST else data)


def _from_a_newer_version(path: Path) -> None:
    _manifest_changed(path, lambda manifest: manifest["migrations"].append("playout.9999_from_the_future"))


UNRESTORABLE_DUMP = b"PGDMP" + bytes(2000)


def _dump_pg_restore_refuses(path: Path) -> None:
    """A dump its checksum vouches for that pg_restore can't read (as from a broken pg_dump)."""
    _rewritten(path, lambda name, data: UNRESTORABLE_DUMP if name == DATABASE_DUMP else data)
    _manifest_changed(path, lambda manifest: manifest["files"].update(
        {DATABASE_DUMP: {"size": len(UNRESTORABLE_DUMP), "sha256": _sha256(UNRESTORABLE_DUMP)}}))


def _not_a_backup(path: Path) -> None:
    path.write_bytes(b"these are not the bytes of a backup\n" * 100)


def _deleted(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize("damage, code", [
    (_dump_byte_flipped, "backup_corrupt"),
    (_cut_in_a_media_file, "backup_incomplete"),
    (_manifest_left_out, "backup_incomplete"),
    (_from_a_newer_version, "backup_newer_schema"),
    (_dump_pg_restore_refuses, "backup_restore_failed"),
    (_not_a_backup, "backup_unreadable"),
    (_deleted, "backup_missing"),
])
def test_a_damaged_or_newer_backup_is_refused_and_the_station_is_left_as_it_was(media_root, tmp_path, kept_databases,
                                                                                damage, code):
    studio = _station(media_root)
    backup = backup_create(directory=tmp_path / "backups")
    damage(backup)
    Studio.objects.filter(pk=studio.pk).update(name="Changed after the backup")  # what a restore would undo
    (media_root / "library" / "since.mp3").write_bytes(b"added after the backup")
    rows, files = _rows(), _files(media_root)

    with pytest.raises(UserError) as refused:
        backup_restore(path=backup)

    assert refused.value.code == code, str(refused.value)
    assert _rows() == rows
    assert _files(media_root) == files
    assert not list(media_root.glob(f"{OWN_PREFIX}*"))  # nothing extracted is left behind
    assert _siblings() == []  # nor a half-restored database


@pytest.mark.slow
def test_a_backup_cut_short_never_looks_complete_and_is_refused(media_root, tmp_path, kept_databases):
    _station(media_root)
    with (media_root / "library" / "long programme.wav").open("wb") as long_file:
        long_file.truncate(512 << 20)  # sparse: long to archive, nothing on disk
    backups = tmp_path / "backups"
    writing = spawn_manage("backup", "--to", str(backups), env=database_env())
    try:
        partial = wait_until(lambda: [path for path in backups.glob(f"{OWN_PREFIX}backup-*/stationkeeper-*.tar")
                                      if path.stat().st_size > 0],
                             timeout=30, interval=0.01, message="a partial backup")
        writing.send_signal(signal.SIGKILL)
        writing.wait()
    finally:
        stop(writing)
    [partial] = partial

    assert list(backups.glob("stationkeeper-*.tar")) == []
    rows, files = _rows(), _files(media_root)
    with pytest.raises(UserError) as refused:
        backup_restore(path=partial)
    assert refused.value.code == "backup_incomplete"
    assert (_rows(), _files(media_root)) == (rows, files)


def test_a_backup_holds_the_database_and_the_media_but_no_cache_and_prunes_older_ones(media_root, tmp_path, settings):
    _station(media_root)
    settings.PLAYOUT_CACHE_ROOT = media_root / "cache"  # a node's copies, made again when missing
    (media_root / "cache" / "node-1").mkdir(parents=True)
    (media_root / "cache" / "node-1" / "copy.mp3").write_bytes(b"a cached copy")
    backups = tmp_path / "backups"
    backups.mkdir()
    for old in ("stationkeeper-20200101T000000Z.tar", "stationkeeper-20200102T000000Z.tar"):
        (backups / old).write_bytes(b"an older backup")

    backup = backup_create(directory=backups, keep=2)

    with tarfile.open(backup) as archive:
        names = archive.getnames()
        manifest = json.loads(archive.extractfile(MANIFEST).read())
    assert (names[0], names[-1]) == (DATABASE_DUMP, MANIFEST)  # the manifest last: a cut backup has none
    assert set(names[1:-1]) == {MEDIA + name for name in _files(media_root) if not name.startswith("cache/")}
    assert manifest["database"] == connection.settings_dict["NAME"]
    assert "station.0001_initial" in manifest["migrations"]
    assert sorted(path.name for path in backups.iterdir()) == ["stationkeeper-20200102T000000Z.tar", backup.name]


def test_the_tools_are_as_new_as_the_server_or_refused():
    server = connection.pg_version // 10000

    assert postgres_tools(server_major=server).major >= server
    with pytest.raises(UserError) as refused:
        postgres_tools(server_major=99)
    assert refused.value.code == "backup_tools_missing"
