"""Shows recorded from the air by each channel's own engine (playout.show_recordings).

Each engine has two air recorders (``playout.liquidsoap.AIR_RECORDERS``). Ahead of a recorded slot the agent
claims its recording and arms a free recorder with the slot's frames, placed on the stream by the engine's clock
(``StreamClock``): from the first frame at or after the slot's start (or now, for a slot under way) to the first at
or after its end. When the engine reports the file closed, a thread makes it an asset; a recording whose file never
closed (its engine died) fails with an alert.
"""

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db import connections

from playout import show_recordings
from playout.agent.launcher import RunningChannel
from playout.liquidsoap import AIR_RECORDERS, FRAME_SECONDS
from playout.models import ShowRecording
from station.fencing import Fenced
from station.processes import yield_to_engines

logger = logging.getLogger(__name__)
# Where the engine's recorder gate opens, in frames before the frame it must first write (it reads the stream's
# position as the frame before is done): half a frame, so the comparison never lands on a boundary.
GATE_FRAMES = 0.5
LEAD = timedelta(seconds=0.5)  # a slot under way is recorded from a little after now: the arming takes a moment
LOOK_EVERY = 1.0  # seconds between two looks at the slots due (the agent steps every few milliseconds)


@dataclass
class Armed:
    recording_id: int
    path: Path
    first_sample_at: float  # wall time of the first frame it writes
    ends_at: float  # wall time of the first frame it no longer writes


class AirRecorder:
    def __init__(self, node):
        self.node = node
        self.closed: queue.Queue = queue.Queue()  # (channel id, recorder, path) from the engines' reader threads
        self.armed: dict[tuple[int, str], Armed] = {}
        self.finishing: set[int] = set()  # recordings whose file a thread is making an asset
        self.looked_at = 0.0

    def step(self, channels: dict[int, RunningChannel], now: datetime) -> set[int]:
        """Arm the recorders of slots about to start, and finish the recordings whose files were closed; return the
        channels whose writes were refused (another node holds them now)."""
        self._take_closed()
        if now.timestamp() - self.looked_at < LOOK_EVERY:
            return set()
        self.looked_at = now.timestamp()
        return self._arm(channels, now)

    def _arm(self, channels: dict[int, RunningChannel], now: datetime) -> set[int]:
        fenced = set()
        ready = {pk: running for pk, running in channels.items()
                 if running.running and running.engine.stream_clock.start is not None}
        if not ready:
            return fenced
        for instance in show_recordings.show_recordings_due(channel_ids=list(ready), now=now):
            running = ready[instance.channel_id]
            recorder = self._free_recorder(running, instance.start_at.timestamp())
            if recorder is None:
                continue
            try:
                recording = show_recordings.show_recording_begin(instance=instance, node=self.node, epoch=running.epoch)
            except Fenced:
                fenced.add(instance.channel_id)
                continue
            if recording is None:
                continue
            clock = running.engine.stream_clock
            first_frame = clock.first_frame_at(max(instance.start_at, now + LEAD).timestamp())
            end_frame = clock.first_frame_at(instance.end_at.timestamp())
            path = show_recordings.show_recording_path(instance)  # its directories made by the engine, which owns them
            try:
                running.engine.gateway.record_air(recorder, from_position=(first_frame - GATE_FRAMES) * FRAME_SECONDS,
                                                  until_position=(end_frame - GATE_FRAMES) * FRAME_SECONDS, path=path)
            except OSError as error:
                show_recordings.show_recording_fail(recording=recording, reason=str(error))
                continue
            self.armed[(instance.channel_id, recorder)] = Armed(
                recording_id=recording.pk, path=path, first_sample_at=clock.start + first_frame * FRAME_SECONDS,
                ends_at=clock.start + end_frame * FRAME_SECONDS)
            logger.info("channel %s: recording %s from the air into %s", running.channel, instance, path)
        return fenced

    def _free_recorder(self, running: RunningChannel, starts_at: float) -> str | None:
        """A recorder of the engine with no slot armed that ends after ``starts_at``."""
        for recorder in AIR_RECORDERS:
            armed = self.armed.get((running.channel.pk, recorder))
            if armed is None or armed.ends_at <= starts_at:
                return recorder
        return None

    def _take_closed(self) -> None:
        """Files the engines closed become assets, on threads of their own (probing and hashing take time)."""
        while True:
            try:
                channel_id, recorder, path = self.closed.get_nowait()
            except queue.Empty:
                return
            armed = self.armed.get((channel_id, recorder))
            if armed is None or str(armed.path) != path:
                continue
            del self.armed[(channel_id, recorder)]
            self.finishing.add(armed.recording_id)
            threading.Thread(target=self._finish_one, args=(armed,), name="air-record-finish", daemon=True).start()

    def fail_unfinished(self, now: datetime) -> None:
        """A recording whose file was never closed (its engine, or its node, stopped during the slot) has failed;
        any agent tells, once (on its re-arm: the grace is minutes)."""
        for recording in show_recordings.show_recordings_unfinished(now=now):
            if recording.pk in self.finishing:
                continue
            show_recordings.show_recording_fail(
                recording=recording, reason="its engine stopped during the slot, before it closed the file")
            logger.warning("recording %s from the air failed: its file was never closed", recording)
            self.armed = {key: armed for key, armed in self.armed.items() if armed.recording_id != recording.pk}

    def _finish_one(self, armed: Armed) -> None:
        yield_to_engines()  # probing and hashing an hour of air take the CPU the engines on air need otherwise
        try:
            recording = ShowRecording.objects.select_related("show", "channel__studio").get(pk=armed.recording_id)
            show_recordings.show_recording_finish(
                recording=recording, path=armed.path, started_at=datetime.fromtimestamp(armed.first_sample_at, tz=UTC),
                ended_at=datetime.fromtimestamp(armed.ends_at, tz=UTC))
        except Exception:
            logger.exception("recording %s from the air: not finished", armed.recording_id)
        finally:
            self.finishing.discard(armed.recording_id)
            connections.close_all()
