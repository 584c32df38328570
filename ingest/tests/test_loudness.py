"""Each ready asset's loudness (EBU R128), measured once with ffmpeg and shown in the API and the admin."""

import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from ingest import services
from ingest.models import Download, IngestSource, MediaAsset
from ingest.services.loudness import DOWNLOADS_QUIET, LOUDNESS_LEASE


def _tone(media_root, name: str, *, gain_db: float, seconds: float = 4, source: str = "sine=frequency=1000") -> object:
    path = media_root / "library" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"{source}:sample_rate=44100:duration={seconds}", "-af", f"volume={gain_db}dB", "-ac", "2", str(path)],
                   check=True, timeout=60)
    return path


def _registered(studio, path, title):
    return services.asset_register_file(studio=studio, path=path, title=title)


def test_two_files_12_lu_apart_measure_12_lu_apart_and_the_api_and_admin_show_it(
        media_root, studio_a, operator_a, client, api):
    loud = _registered(studio_a, _tone(media_root, "loud.mp3", gain_db=0), "Loud")
    quiet = _registered(studio_a, _tone(media_root, "quiet.mp3", gain_db=-12), "Quiet")
    assert loud.loudness_measured_at is None and quiet.loudness_measured_at is None

    assert services.assets_queue_loudness(now=timezone.now()) == 2
    assert services.assets_queue_loudness(now=timezone.now()) == 0  # leased: another tick leaves them to their worker
    loud, quiet = (services.asset_measure_loudness(asset_id=asset.pk) for asset in (loud, quiet))

    assert loud.loudness_lufs - quiet.loudness_lufs == pytest.approx(12, abs=0.3)
    assert loud.true_peak_dbtp == pytest.approx(loud.loudness_lufs, abs=1)  # a steady 1 kHz tone: peak and loudness meet
    assert (loud.loudness_range_lu, quiet.loudness_range_lu) == (0, 0)
    assert services.asset_measure_loudness(asset_id=loud.pk) is None  # once per file
    assert services.assets_queue_loudness(now=timezone.now() + 2 * LOUDNESS_LEASE) == 0

    shown = api(operator_a).get(f"/api/v1/media/{quiet.pk}/").json()
    assert (shown["loudness_lufs"], shown["true_peak_dbtp"]) == (quiet.loudness_lufs, quiet.true_peak_dbtp)
    client.force_login(operator_a)
    page = client.get(f"/admin/ingest/mediaasset/{quiet.pk}/change/").content.decode()
    assert "Integrated loudness (LUFS)" in page and f"{quiet.loudness_lufs}" in page


def test_silence_and_a_file_with_no_audio_are_measured_once_with_what_can_be_said(media_root, studio_a, caplog):
    silence = _registered(studio_a, _tone(media_root, "silence.wav", gain_db=0, source="anullsrc=channel_layout=stereo",
                                          seconds=3), "Silence")
    picture = media_root / "library" / "picture.mkv"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=2:size=64x64:rate=5",
                    str(picture)], check=True, timeout=60)
    no_audio = _registered(studio_a, picture, "Picture only")

    silence = services.asset_measure_loudness(asset_id=silence.pk)
    assert (silence.loudness_lufs, silence.true_peak_dbtp) == (-70.0, None)  # below R128's gate; no peak at all
    no_audio = services.asset_measure_loudness(asset_id=no_audio.pk)
    assert no_audio.loudness_measured_at is not None and no_audio.loudness_lufs is None
    assert "Could not measure the loudness of picture.mkv" in caplog.text
    assert services.assets_queue_loudness(now=timezone.now()) == 0  # neither is tried again


def test_a_lost_measurement_is_queued_again_once_its_lease_ends_and_a_file_probed_again_is_measured_again(
        media_root, studio_a):
    path = _tone(media_root, "tone.wav", gain_db=-6)
    asset = _registered(studio_a, path, "Tone")
    now = timezone.now()
    assert services.assets_queue_loudness(now=now) == 1  # its worker dies: nothing is written
    assert services.assets_queue_loudness(now=now + LOUDNESS_LEASE - timedelta(seconds=1)) == 0
    assert services.assets_queue_loudness(now=now + LOUDNESS_LEASE + timedelta(seconds=1)) == 1
    first = services.asset_measure_loudness(asset_id=asset.pk).loudness_lufs

    _tone(media_root, "tone.wav", gain_db=-18)  # the file replaced, then registered again
    asset = _registered(studio_a, path, "Tone")
    assert asset.loudness_measured_at is None and asset.loudness_lufs is None
    assert services.assets_queue_loudness(now=timezone.now()) == 1
    assert services.asset_measure_loudness(asset_id=asset.pk).loudness_lufs == pytest.approx(first - 12, abs=0.3)


def test_a_backlog_is_measured_a_few_at_a_time_and_only_ready_assets(media_root, studio_a, settings):
    settings.INGEST_LOUDNESS_PARALLEL = 2
    path = _tone(media_root, "short.wav", gain_db=-6, seconds=1)
    backlog = MediaAsset.objects.bulk_create(
        MediaAsset(studio=studio_a, title=f"Copy {n}", file=str(path.relative_to(media_root)), duration_seconds=1,
                   status=MediaAsset.Status.READY) for n in range(5))
    MediaAsset.objects.create(studio=studio_a, title="Still recording", status=MediaAsset.Status.LIVE)
    now = timezone.now()
    assert services.assets_queue_loudness(now=now) == 2
    assert services.assets_queue_loudness(now=now) == 0  # two measurements run: no room
    measured = MediaAsset.objects.filter(loudness_lease_until__isnull=False).first()
    services.asset_measure_loudness(asset_id=measured.pk)
    assert services.assets_queue_loudness(now=now) == 1
    assert services.assets_queue_loudness(now=now + LOUDNESS_LEASE + timedelta(seconds=1)) == 2  # leases run out
    assert MediaAsset.objects.filter(pk__in=[asset.pk for asset in backlog], loudness_measured_at__isnull=True).count() == 4


def test_no_measurement_is_queued_while_downloads_are_busy_or_were_just_now(media_root, studio_a):
    _registered(studio_a, _tone(media_root, "tone.wav", gain_db=-6, seconds=1), "Tone")
    source = IngestSource.objects.create(studio=studio_a, name="Feed", kind=IngestSource.Kind.URL_LIST,
                                         url_list="https://example.org/a.mp3")
    download = Download.objects.create(source=source, item_key="a", url="https://example.org/a.mp3",
                                       status=Download.Status.DOWNLOADING)
    assert services.assets_queue_loudness(now=timezone.now()) == 0  # downloads first
    Download.objects.filter(pk=download.pk).update(status=Download.Status.COMPLETED, updated_at=timezone.now())
    assert services.assets_queue_loudness(now=timezone.now()) == 0  # and the next wave may be coming
    assert services.assets_queue_loudness(now=timezone.now() + DOWNLOADS_QUIET + timedelta(seconds=1)) == 1
