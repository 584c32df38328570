"""Engines run without root (issue 14, done means): an injected command would have no privilege to use.

The confirmed script injection ran ``id`` as ``uid=0(root)``. Now, when the agent runs as root (as
here in CI), ffmpeg and Liquidsoap run as ENGINE_USER, owning only the directories they write.
"""

import os
import pwd
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from django.utils import timezone

from playout.tests.test_engine import _channel_on_air
from recorders.models import RecorderSchedule
from station.tests import factories
from station.tests.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def open_media_root(settings):
    """A station tree the engine account can reach (pytest's own temporary folders are private to root)."""
    top = Path(tempfile.mkdtemp(prefix="sk-open-"))
    top.chmod(0o755)
    settings.PLAYOUT_HARBOR_PORTS = "1024-65535"
    settings.MEDIA_ROOT = top / "media"
    settings.MEDIA_ROOT.mkdir()
    yield settings.MEDIA_ROOT
    shutil.rmtree(top, ignore_errors=True)


def _engine_uids(name: str, marker: str) -> set[int]:
    """The users of the engines named ``name`` whose command line or working directory (a recording's encoder works
    in the recording's directory) holds ``marker``."""
    return {process.uids().real for process in psutil.process_iter(["name", "cmdline", "cwd"])
            if process.info["name"] == name and any(marker in part for part in [*(process.info["cmdline"] or []),
                                                                                 process.info["cwd"] or ""])}


def _expected_uid() -> int:
    return pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else os.geteuid()


def test_liquidsoap_and_ffmpeg_run_as_the_engine_user_not_root(open_media_root):
    with _channel_on_air(open_media_root) as (channel, _url, _):
        liquidsoap = _engine_uids("liquidsoap", f"channel-{channel.pk}")
        recorder = factories.RecorderFactory(source_url="tone:440", node=channel.node)
        start = timezone.now() + timedelta(seconds=2)
        window = factories.ScheduleFactory(recorder=recorder, start_at=start, end_at=start + timedelta(seconds=4))
        ffmpeg = wait_until(lambda: _engine_uids("ffmpeg", f"schedule-{window.pk}"), timeout=20,
                            message="ffmpeg recording")
        done = wait_until(lambda: (w := RecorderSchedule.objects.get(pk=window.pk)).status == "completed" and w,
                          timeout=30, message="the recording to complete")

    assert liquidsoap == {_expected_uid()} and ffmpeg == {_expected_uid()}
    assert 0 not in liquidsoap | ffmpeg
    assert done.session.asset.duration_seconds > 3  # and they did their work as that user
