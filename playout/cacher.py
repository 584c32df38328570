"""The cacher: the media a node will air in the coming hours is on the node, verified, before air.

The agent hands it the assets of its channels' coming items, nearest start first (the fillers
first of all). Worker threads make a verified copy of each available: the MEDIA_ROOT file itself
when the nodes share that storage and its SHA-256 matches, otherwise a copy fetched from the
station's node media endpoint (a URL signed with the node's own key, kept in the database and never
shown to staff, that expires) into the node's cache, written aside and renamed only once its
checksum matches. A failure is kept with its reason, and retried after
a pause, so the agent alerts well before the slot and lets the filler cover the item.
An asset no ingest job has measured the loudness of yet is measured from its copy once it is
present (the dispatcher gives an item its gain from it), and the figures stored for everyone.
"""

import hashlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import requests
from django.core import signing
from django.db import DatabaseError, connection
from django.urls import reverse
from django.utils.translation import gettext as _

from ingest.media import Loudness, measure_loudness, sha256_file
from ingest.services import asset_store_loudness
from playout.models import ScheduledItem
from playout.relay import PLAYLIST_REFUSED, USER_AGENT, is_playlist
from station import outbound
from station.errors import UserError
from station.models import Alert
from station.services import alert_raise

logger = logging.getLogger(__name__)
HORIZON = timedelta(hours=6)  # how far ahead media is fetched and a failure reported
RETRY_SECONDS = 30
URL_MAX_AGE_SECONDS = 3600
FETCH_TIMEOUT = (5, 30)  # connect, between bytes
CHUNK_BYTES = 1 << 20
_SIGNING_SALT = "playout.node-media"


class NotPresent(Exception):
    """Why a file could not be made present on the node."""


def media_token(asset_id: int, *, node) -> str:
    return signing.dumps(asset_id, key=node.media_key, salt=_SIGNING_SALT)


def asset_id_from_token(token: str, *, node) -> int:
    """The asset ``node`` may fetch; raises signing.BadSignature (or SignatureExpired) otherwise."""
    return int(signing.loads(token, key=node.media_key, salt=_SIGNING_SALT, max_age=URL_MAX_AGE_SECONDS))


def node_media_url(station_url: str, asset_id: int, *, node) -> str:
    return station_url.rstrip("/") + reverse("playout:node-media", args=[node.pk, media_token(asset_id, node=node)])


@dataclass(frozen=True, order=True)
class _Wanted:
    """A file to make present (key: the asset id) or a webstream to try (key: its URL)."""

    priority: float
    key: int | str = field(compare=False)
    file_name: str = field(compare=False, default="")
    checksum: str = field(compare=False, default="")
    measured: bool = field(compare=False, default=True)  # its loudness
    duration_seconds: float = field(compare=False, default=0.0)


class MediaCache:
    def __init__(self, *, directory: Path, shared_root: Path | None, station_url: str, node, workers: int = 2):
        self.node = node  # signs the requests for media the node does not share
        self.directory = directory
        self.shared_root = shared_root
        self.station_url = station_url.rstrip("/")
        self.ready: dict[int | str, Path | float] = {}  # asset id → verified copy; webstream URL → when it answered
        self.failed: dict[int | str, tuple[str, float]] = {}  # asset id or URL → (reason, when)
        self.loudness: dict[int, Loudness] = {}  # asset id → measured here, before air
        self.queued: set[int | str] = set()
        self.arrivals = 0  # grows with every file made present, so the agent sees new ones at once
        self.lock = threading.Lock()
        self.work: queue.PriorityQueue[_Wanted] = queue.PriorityQueue()
        self.session = requests.Session()  # the station's own media endpoint (STATION_URL)
        self.webstreams = outbound.guarded_session(user_agent=USER_AGENT)  # operators' URLs: public addresses only
        directory.mkdir(parents=True, exist_ok=True)
        self.to_measure: queue.Queue[tuple[_Wanted, Path]] = queue.Queue()
        for _worker in range(workers):
            threading.Thread(target=self._work, daemon=True).start()
        threading.Thread(target=self._measure_loop, daemon=True).start()

    # -- the agent's side ---------------------------------------------------------------------

    def want(self, assets_by_priority) -> None:
        """Queue the assets not on the node yet; ``assets_by_priority`` yields (priority, asset), lowest first."""
        self._queue(_Wanted(priority, asset.pk, asset.file.name, asset.checksum, asset.loudness_measured_at is not None,
                            asset.duration_seconds or 0.0) for priority, asset in assets_by_priority)

    def try_webstreams(self, urls_by_priority) -> None:
        """Check that the coming webstreams answer (again, once a check is older than the retry pause)."""
        now = time.time()
        with self.lock:
            for url in [url for _, url in urls_by_priority if now - self.ready.get(url, now) > RETRY_SECONDS]:
                del self.ready[url]
        self._queue(_Wanted(priority, url) for priority, url in urls_by_priority)

    def _queue(self, wanted_items) -> None:
        now = time.time()
        with self.lock:
            for wanted in wanted_items:
                if wanted.key in self.ready or wanted.key in self.queued:
                    continue
                failure = self.failed.get(wanted.key)
                if failure and now - failure[1] < RETRY_SECONDS:
                    continue
                self.queued.add(wanted.key)
                self.work.put(wanted)

    def path_for(self, asset_id: int) -> Path | None:
        """The verified copy the engine can play, if the node has one."""
        return self.ready.get(asset_id)

    def problem(self, key: int | str) -> str:
        """Why an asset (by id) or a webstream (by URL) can't be played, if it can't."""
        failure = self.failed.get(key)
        return failure[0] if failure and key not in self.ready else ""

    def unplayable(self, items: list[ScheduledItem], *, now_arming: set[int] = frozenset()) -> set[int]:
        """Ids of the items whose media failed to reach the node, or is still missing at its arming; alert for each."""
        unplayable = set()
        for item in sorted(items, key=lambda i: i.start_at):
            if item.webstream_url:
                problem = self.problem(item.webstream_url)
            elif not item.asset_id:
                continue
            else:
                problem = self.problem(item.asset_id)
            if not problem and item.asset_id and item.pk in now_arming and self.path_for(item.asset_id) is None:
                problem = _("its file has not reached this node in time")
            if problem:
                unplayable.add(item.pk)
                alert_raise(
                    studio=item.channel.studio_id, code="webstream_unreachable" if item.webstream_url else "media_missing",
                    subject=item.title,
                    severity=Alert.Severity.CRITICAL,
                    message=_("%(title)s, on air at %(start)s on %(channel)s, cannot be played: %(problem)s. "
                              "The filler will cover it.")
                    % {"title": item.title, "start": item.start_at.isoformat(), "channel": item.channel, "problem": problem},
                )
        return unplayable

    # -- the workers --------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            wanted = self.work.get()
            present, reason = None, ""
            try:
                present = self._answers(wanted.key) if isinstance(wanted.key, str) else self._make_present(wanted)
            except NotPresent as problem:
                reason = str(problem)
            except Exception as error:  # a worker must survive whatever one file does to it
                logger.exception("cacher: %s", wanted.key)
                reason = str(error)
            with self.lock:
                self.queued.discard(wanted.key)
                if present is not None:
                    self.ready[wanted.key] = present
                    self.failed.pop(wanted.key, None)
                    self.arrivals += 1
                else:
                    self.failed[wanted.key] = (reason, time.time())
                    logger.warning("cacher: %s not ready: %s", wanted.key, reason)
            if present is not None and isinstance(wanted.key, int) and not wanted.measured:
                self.to_measure.put((wanted, present))

    def _measure_loop(self) -> None:
        """The loudness of the assets no ingest job has measured yet, from their copies, one at a time on a
        thread of its own: copies ready are playable at once (at their own level until measured), and a
        long file measured never holds up the fetching of the next one."""
        while True:
            wanted, present = self.to_measure.get()
            self._measure(wanted, present)

    def _measure(self, wanted: _Wanted, present: Path) -> None:
        try:
            self.loudness[wanted.key] = measured = measure_loudness(present, duration_seconds=wanted.duration_seconds)
            with self.lock:
                self.arrivals += 1  # the fillers' playlists are written again with its gain
        except UserError as error:
            logger.warning("cacher: asset %s: %s", wanted.key, error)
            measured = None
        try:
            asset_store_loudness(asset_id=wanted.key, checksum=wanted.checksum, measured=measured)
        except DatabaseError:  # the figures serve this node anyway; an ingest job stores them later
            logger.exception("cacher: asset %s: its loudness could not be stored", wanted.key)
        finally:
            connection.close()  # a worker thread holds no connection between files

    def _make_present(self, wanted: _Wanted) -> Path:
        """The verified local path; NotPresent says why there is none."""
        if not wanted.file_name:
            raise NotPresent(_("the media has no file"))
        if not wanted.checksum:
            raise NotPresent(_("the media has no checksum to verify its copy against"))
        cached = self.directory / (wanted.checksum + Path(wanted.file_name).suffix)
        if cached.exists():  # only ever renamed into place once verified
            return cached
        if self.shared_root is not None:
            shared = self.shared_root / wanted.file_name
            if shared.exists():
                if sha256_file(shared) == wanted.checksum:
                    return shared
                raise NotPresent(_("its file %(file)s on the shared storage does not match its checksum")
                                 % {"file": wanted.file_name})
        return self._download(wanted, cached)

    def _answers(self, url: str) -> float:
        """When the webstream answered with audio; NotPresent says why it did not."""
        try:
            with self.webstreams.get(url, stream=True, timeout=FETCH_TIMEOUT) as response:
                if response.status_code != 200:
                    raise NotPresent(_("the webstream %(url)s answered %(status)s") % {"url": url, "status": response.status_code})
                first = next(response.iter_content(4096), b"")
                if not first:
                    raise NotPresent(_("the webstream %(url)s sent no audio") % {"url": url})
                if is_playlist(first):  # the relay would refuse it at its slot: the desk hears of it now
                    raise NotPresent(_("the webstream %(url)s: %(reason)s") % {"url": url, "reason": PLAYLIST_REFUSED})
        except UserError as refused:
            raise NotPresent(str(refused)) from refused
        except requests.RequestException as error:
            raise NotPresent(_("the webstream %(url)s cannot be reached: %(error)s")
                             % {"url": url, "error": type(error).__name__}) from error
        return time.time()

    def _download(self, wanted: _Wanted, cached: Path) -> Path:
        url = node_media_url(self.station_url, wanted.key, node=self.node)
        partial = cached.with_name(cached.name + ".part")
        digest = hashlib.sha256()
        try:
            with self.session.get(url, stream=True, timeout=FETCH_TIMEOUT) as response:
                if response.status_code != 200:
                    raise NotPresent(_("the station answered %(status)s for its file") % {"status": response.status_code})
                with partial.open("wb") as out:
                    for chunk in response.iter_content(CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
        except (requests.RequestException, OSError) as error:
            partial.unlink(missing_ok=True)
            # the error's own text holds the signed link and local paths: its kind says enough
            raise NotPresent(_("its file could not be fetched from %(url)s: %(error)s")
                             % {"url": self.station_url, "error": type(error).__name__}) from error
        if digest.hexdigest() != wanted.checksum:
            partial.unlink(missing_ok=True)
            raise NotPresent(_("the fetched copy of its file does not match its checksum"))
        partial.replace(cached)
        return cached


