"""A recorder records what it is for, never the host's files (issue 14, confirmed 2, and the finite-source loop).

A recorder with ``lavfi:amovie=/proc/self/cwd/var/secret_key:f=u8:loop=0`` and WAV output recorded
the station's secret key byte for byte, and a plain path recorded another studio's files. Sources
are now an allowlist per kind (recorders.sources), streams reach ffmpeg through the agent's guarded
feeder, and ffmpeg opens no file, protocol or playlist of its own. Real ffmpeg throughout.
"""

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from ingest.media import generate_tone
from ingest.models import MediaAsset
from recorders.engine import CaptureRun, WindowFile
from recorders.models import Recorder, RecorderSchedule
from recorders.sources import parse_source
from recorders.tests.audio import decoded, sound_spans
from station.tests import factories
from station.tests.processes import database_env, spawn_manage, stop, wait_until
from station.tests.security.servers import Answer, HostileServer

Status = RecorderSchedule.Status
SECRET = b"the-station-secret-0123456789"

REFUSED = [
    "lavfi:amovie=/proc/self/cwd/var/secret_key:f=u8:loop=0",
    "lavfi:sine=frequency=1000",
    "LAVFI:sine",
    "/proc/self/cwd/var/secret_key",
    "file:///etc/passwd",
    "file:var/secret_key",
    "concat:/etc/passwd|/etc/hostname",
    "subfile,,start,0,end,0,,:/etc/passwd",
    "async:file:/etc/passwd",
    "tcp://127.0.0.1:5432",
    "rtsp://stream.example.org/live",
    "udp://0.0.0.0:5000",
    "v4l2:/dev/video0",
    "http://127.0.0.1:8000/admin/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://[::1]:8000/",
    "http://[::ffff:127.0.0.1]/",
    "http://169.254.169.254/latest/meta-data/",
    "HTTP://localhost:8000/",
    "icecast://localhost:8000/live",
    "http://user:secret@stream.example.org/live",
    "http://stream.example.org/a b",
    "http://stream.example.org/live\nfile:/etc/passwd",
    "srt://127.0.0.1:9000",
    "srt://stream.example.org:9000?mode=listener",
    "srt://stream.example.org:9000?streamid=a&localaddr=127.0.0.1",
    "srt://stream.example.org",
    "tone:0",
    "tone:1000;file:/etc/passwd",
    "alsa:hw:0 -i /etc/passwd",
]
ALLOWED = ["http://stream.example.org/live.mp3", "https://stream.example.org/live", "icecast://stream.example.org:8000/live",
           "srt://stream.example.org:9000?streamid=live&latency=200", "tone:1000"]


@pytest.mark.django_db
@pytest.mark.parametrize(("source", "accepted"), [(source, False) for source in REFUSED] + [(source, True) for source in ALLOWED])
def test_the_api_takes_streams_devices_and_tones_and_refuses_every_other_source(api, operator_b, studio_b, source, accepted):
    response = api(operator_b).post("/api/v1/recorders/", {"studio": studio_b.pk, "name": "Owned", "source_url": source},
                                    format="json")

    assert response.status_code == (201 if accepted else 400), response.json()
    assert set(response.json().get("error", {}).get("fields", {})) == (set() if accepted else {"source_url"})
    assert Recorder.objects.filter(name="Owned").exists() == accepted


@pytest.mark.django_db
def test_a_capture_device_is_one_its_node_declares(api, operator_b, studio_b):
    node = factories.NodeFactory(name="studio-host", capture_devices=["alsa:hw:1,0"])
    post = lambda **fields: api(operator_b).post(  # noqa: E731
        "/api/v1/recorders/", {"studio": studio_b.pk, "name": f"Desk {len(fields)}", **fields}, format="json")

    assert post(source_url="alsa:hw:1,0", node=node.pk).status_code == 201
    offered_elsewhere = post(source_url="alsa:hw:2,0", node=node.pk, output_format="wav")
    assert offered_elsewhere.status_code == 400
    assert "offers no capture device alsa:hw:2,0" in str(offered_elsewhere.json())
    no_node = post(source_url="alsa:hw:1,0")
    assert no_node.status_code == 400 and "node" in no_node.json()["error"]["fields"]


@pytest.fixture
def secret_file(tmp_path) -> Path:
    path = tmp_path / "secret_key"
    path.write_bytes(SECRET * 100)
    return path


def _ended(windows) -> list[RecorderSchedule] | None:
    rows = list(RecorderSchedule.objects.filter(pk__in=[window.pk for window in windows]))
    return rows if all(row.status not in RecorderSchedule.ACTIVE_STATUSES for row in rows) else None


def _all_bytes_under(root: Path) -> bytes:
    return b"".join(path.read_bytes() for path in root.rglob("*") if path.is_file())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_source_written_around_validation_fails_its_own_window_and_records_nothing_of_the_host(media_root, secret_file):
    bad = factories.RecorderFactory(output_format="wav")
    Recorder.objects.filter(pk=bad.pk).update(source_url=f"lavfi:amovie={secret_file}:f=u8:loop=0")
    good = factories.RecorderFactory(source_url="tone:440", output_format="wav")
    start = timezone.now() + timedelta(seconds=3)
    windows = [factories.ScheduleFactory(recorder=recorder, start_at=start, end_at=start + timedelta(seconds=2))
               for recorder in (bad, good)]
    agent = spawn_manage("run_node", "--name", "host-1", env=database_env())
    try:
        ended = wait_until(lambda: _ended(windows), timeout=40, message="both windows to end")
        assert agent.poll() is None  # the agent outlived the bad row
    finally:
        stop(agent)

    by_recorder = {window.recorder_id: window for window in ended}
    assert by_recorder[bad.pk].status == Status.FAILED
    assert "can't be recorded" in by_recorder[bad.pk].error_message
    assert by_recorder[good.pk].status == Status.COMPLETED
    assert SECRET not in _all_bytes_under(media_root)


def _record(source_url: str, directory: Path, *, seconds: float) -> CaptureRun:
    """One real run on a source for a window of ``seconds`` from now, as the agent starts it, until it ends."""
    file = WindowFile(directory=directory, output_format="wav", segment_seconds=600,
                      window=(time.time(), time.time() + seconds))
    run = CaptureRun(source=parse_source(source_url), file=file)
    try:
        run.reader.join(timeout=seconds + 15)
    finally:
        run.stop()
        file.finish(to_window_end=False)
    return run


@pytest.fixture
def host():
    server = HostileServer()
    yield server
    server.close()


@pytest.mark.slow
@pytest.mark.usefixtures("loopback_allowed")
@pytest.mark.parametrize("segment", ["file:{secret}", "{secret}", "file:{secret}.mp3", "concat:{secret}|{secret}"])
def test_a_stream_that_is_a_playlist_of_local_files_records_none_of_them(host, tmp_path, secret_file, segment):
    playlist = ("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n" + segment.format(secret=secret_file)
                + "\n#EXT-X-ENDLIST\n").encode()
    url = host.serve("/live.m3u8", Answer(body=playlist, headers={"Content-Type": "application/vnd.apple.mpegurl"}))

    run = _record(url, tmp_path / "rec", seconds=3)

    assert SECRET not in _all_bytes_under(tmp_path / "rec")
    assert not run.has_output()


@pytest.mark.slow
def test_a_redirect_from_an_allowed_host_to_an_internal_one_is_refused(settings, tmp_path):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.2/32"]  # the station allows one internal host, not its neighbours
    internal, allowed = HostileServer("127.0.0.1"), HostileServer("127.0.0.2")
    try:
        tone = generate_tone(tmp_path / "tone.mp3", frequency=440, seconds=3).read_bytes()
        target = internal.serve("/private.mp3", Answer(body=tone, headers={"Content-Type": "audio/mpeg"}))
        url = allowed.redirect("/live.mp3", target)

        run = _record(url, tmp_path / "rec", seconds=3)
    finally:
        internal.close()
        allowed.close()

    assert internal.hits == []
    assert "internal address" in run.failure_reason()
    assert not run.has_output()


@pytest.mark.slow
@pytest.mark.usefixtures("loopback_allowed")
def test_a_source_faster_than_real_time_records_no_more_than_it_is_given(host, tmp_path):
    tone = generate_tone(tmp_path / "tone.mp3", frequency=440, seconds=5).read_bytes()
    url = host.serve("/flood.mp3", Answer(body=tone, headers={"Content-Type": "audio/mpeg"}, endless=True))

    run = _record(url, tmp_path / "rec", seconds=4)

    assert 3.5 < run.file.recorded_seconds <= 4.05
    assert sum(part.stat().st_size for part in run.file.parts()) < 4.1 * 44100 * 4 + 1000  # 4 s of 16-bit stereo WAV


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("loopback_allowed")
def test_a_finite_source_is_recorded_once_not_looped_over_its_window(media_root, host, tmp_path):
    tone = generate_tone(tmp_path / "tone.mp3", frequency=440, seconds=3).read_bytes()
    url = host.serve("/clip.mp3", Answer(body=tone, headers={"Content-Type": "audio/mpeg"}))
    recorder = factories.RecorderFactory(source_url=url, output_format="wav")
    start = timezone.now() + timedelta(seconds=3)
    window = factories.ScheduleFactory(recorder=recorder, start_at=start, end_at=start + timedelta(seconds=8))
    agent = spawn_manage("run_node", "--name", "host-1", env=database_env())
    try:
        done = wait_until(lambda: (_ended([window]) or [None])[0], timeout=40, message="the window to end")
    finally:
        stop(agent)

    assert done.status == Status.COMPLETED, done.error_message
    asset = MediaAsset.objects.get(recording_session__schedule=done)
    assert asset.duration_seconds == pytest.approx(8, abs=0.05)  # the window, the file's end to its end silent
    [(sound_from, sound_to)] = sound_spans(decoded(Path(asset.file.path)))
    assert sound_from < 0.05 and 2.9 < sound_to - sound_from < 3.1  # the 3 s file once, at the start
    assert len([hit for hit in host.hits if hit[1] == "/clip.mp3"]) == 1
    assert done.session.gaps  # the rest of the window is a recorded gap
