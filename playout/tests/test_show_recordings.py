"""Shows recorded from the air by a real Liquidsoap channel: each slot an asset cut to its frames."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from ingest.media import generate_tone
from ingest.models import MediaAsset
from ingest.services import asset_register_file
from playout import show_recordings
from playout.agent.air_records import AirRecorder, Armed
from playout.liquidsoap import FRAME_SAMPLES
from playout.models import Channel, PlaylistItem, ShowInstance, ShowRecording
from playout.show_recordings import (FINISH_GRACE, show_recording_begin, show_recording_fail, show_recordings_due,
                                     show_recordings_unfinished)
from recorders.tests.audio import decoded
from recorders.tests.stream_server import closed_port
from playout.tests.output import SAMPLE_RATE, tone_spans
from station.errors import TransitionNotAllowed
from station.models import Alert
from station.processes import BACKGROUND_NICENESS
from station.tests.factories import ChannelFactory, NodeFactory, PlaylistFactory, ShowFactory, StudioFactory
from station.tests.processes import database_env, niceness_of_a_child, spawn_manage, stop, wait_until

ON_THE_SLOT = 0.030  # seconds: the bound for a recording's ends against its slot
SLOT_SECONDS = 2.5


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_back_to_back_shows_are_each_recorded_from_the_air_cut_to_their_slots(media_root):
    studio = StudioFactory()
    node = NodeFactory(name="host-1")
    filler = PlaylistFactory(studio=studio, name="Filler")
    PlaylistItem.objects.create(playlist=filler, asset=asset_register_file(studio=studio, title="Filler", path=generate_tone(
        media_root / "library" / "filler.wav", frequency=330, seconds=120)))
    channel = ChannelFactory(studio=studio, node=node, status=Channel.Status.STARTING, fallback_playlist=filler,
                             output_settings={"port": closed_port()}, slug="air")
    first_slot = timezone.now() + timedelta(seconds=12)
    shows = []
    for index, frequency in enumerate((700, 990)):
        playlist = PlaylistFactory(studio=studio, name=f"Tone {frequency}")
        PlaylistItem.objects.create(playlist=playlist, asset=asset_register_file(
            studio=studio, title=f"Tone {frequency}", path=generate_tone(
                media_root / "library" / f"tone-{frequency}.wav", frequency=frequency, seconds=SLOT_SECONDS + 1)))
        start = first_slot + timedelta(seconds=SLOT_SECONDS * index)
        shows.append(ShowFactory(channel=channel, name=f"Show {frequency}", playlist=playlist, start_at=start,
                                 end_at=start + timedelta(seconds=SLOT_SECONDS), record_air=True))
    agent = spawn_manage("run_node", "--name", "host-1", env=database_env())
    try:
        wait_until(lambda: ShowRecording.objects.filter(status=ShowRecording.Status.COMPLETED).count() == 2,
                   timeout=45, message="both shows recorded")
    finally:
        stop(agent)

    for show, frequency in zip(shows, (700, 990)):
        recording = ShowRecording.objects.select_related("asset", "instance").get(show=show)
        slot_start, slot_end = recording.instance.start_at, recording.instance.end_at
        assert (recording.slot_start, recording.slot_end) == (slot_start, slot_end)
        assert recording.asset.origin == MediaAsset.Origin.RECORDING
        assert recording.asset.title.startswith(show.name)
        assert show.recordings.get() == recording  # grouped under its show
        # its first sample at the slot's first frame, on the output's timeline
        assert 0 <= (recording.started_at - slot_start).total_seconds() < ON_THE_SLOT
        assert abs((recording.ended_at - slot_end).total_seconds()) < ON_THE_SLOT

        samples = decoded(Path(recording.asset.file.path))
        length = len(samples) / SAMPLE_RATE
        assert abs(length - SLOT_SECONDS) < ON_THE_SLOT, length
        # to the frame: the slot's first item from the file's first samples, its last to the file's end
        loud = [index for index, value in enumerate(samples) if abs(value) > 300]
        assert loud[0] < 2 * FRAME_SAMPLES and len(samples) - loud[-1] < 2 * FRAME_SAMPLES, (loud[0], loud[-1], len(samples))
        spans = tone_spans(samples, frequency)
        assert len(spans) == 1, spans
        heard_from, heard_until = spans[0]
        # the show's tone from the file's start to its end: nothing of the filler or the other show beyond a window
        assert heard_from < ON_THE_SLOT and length - heard_until < ON_THE_SLOT, (heard_from, heard_until, length)
        assert not tone_spans(samples, 330) and not tone_spans(samples, 1690 - frequency)


@pytest.fixture
def recorded_slot(db):
    show = ShowFactory(name="Drive", record_air=True, start_at=timezone.now() + timedelta(seconds=5),
                       end_at=timezone.now() + timedelta(minutes=30))
    return ShowInstance.objects.create(show=show, channel=show.channel, start_at=show.start_at, end_at=show.end_at)


def test_a_slot_is_due_shortly_before_it_starts_and_its_recording_is_begun_once(recorded_slot):
    channel_ids, node = [recorded_slot.channel_id], NodeFactory()
    assert show_recordings_due(channel_ids=channel_ids, now=recorded_slot.start_at - timedelta(minutes=1)) == []
    assert show_recordings_due(channel_ids=channel_ids, now=timezone.now()) == [recorded_slot]
    ShowInstance.objects.create(show=ShowFactory(channel=recorded_slot.channel, record_air=False),
                                channel=recorded_slot.channel, start_at=recorded_slot.end_at,
                                end_at=recorded_slot.end_at + timedelta(minutes=5))  # not recorded
    first = show_recording_begin(instance=recorded_slot, node=node, epoch=recorded_slot.channel.lease_epoch)
    assert first.status == ShowRecording.Status.RECORDING and first.node == node
    assert show_recording_begin(instance=recorded_slot, node=NodeFactory(), epoch=recorded_slot.channel.lease_epoch) is None
    assert show_recordings_due(channel_ids=channel_ids, now=timezone.now()) == []


def test_a_recording_whose_file_never_closed_fails_with_an_alert(recorded_slot):
    node = NodeFactory()
    recording = show_recording_begin(instance=recorded_slot, node=node, epoch=recorded_slot.channel.lease_epoch)
    assert show_recordings_unfinished(now=recorded_slot.end_at) == []
    late = recorded_slot.end_at + FINISH_GRACE + timedelta(seconds=1)
    assert show_recordings_unfinished(now=late) == [recording]  # whichever node recorded it
    show_recording_fail(recording=recording, reason="its engine stopped")
    show_recording_fail(recording=recording, reason="told again by another agent")  # once
    assert ShowRecording.objects.get(pk=recording.pk).status == ShowRecording.Status.FAILED
    alert = Alert.objects.get(code="show_recording_failed")
    assert "Drive" in alert.message and "its engine stopped" in alert.message
    with pytest.raises(TransitionNotAllowed):
        recording.move_to(ShowRecording.Status.COMPLETED)


@pytest.mark.django_db(transaction=True)  # the file is made an asset on a thread of its own, with its own connection
def test_a_closed_air_recording_becomes_an_asset_on_a_thread_that_yields_the_cpu_to_the_engines(
        recorded_slot, media_root, monkeypatch):
    slot = recorded_slot
    recording = show_recording_begin(instance=slot, node=NodeFactory(), epoch=slot.channel.lease_epoch)
    path = generate_tone(media_root / "air" / "drive.wav", frequency=440, seconds=2)
    air = AirRecorder(recording.node)
    air.armed[(recording.channel_id, "a")] = Armed(recording.pk, path, first_sample_at=slot.start_at.timestamp(),
                                                    ends_at=slot.end_at.timestamp())
    finishing_at = []
    finish = show_recordings.show_recording_finish  # what ffprobe and the hashing run at, the engine's file closed

    def observed(**arguments):
        finishing_at.append(niceness_of_a_child())
        return finish(**arguments)

    monkeypatch.setattr(show_recordings, "show_recording_finish", observed)
    air.closed.put((recording.channel_id, "a", str(path)))
    air.step({}, timezone.now())

    done = wait_until(lambda: ShowRecording.objects.filter(pk=recording.pk, status=ShowRecording.Status.COMPLETED)
                      .select_related("asset").first(), timeout=20, message="the recording to become an asset")
    assert done.asset.status == MediaAsset.Status.READY
    assert finishing_at == [BACKGROUND_NICENESS]
    assert niceness_of_a_child() == 0  # the agent's loop, which starts and feeds the engines, keeps its priority
