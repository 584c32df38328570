import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from ingest.models import MediaAsset
from playout.models import Channel, PlaylistItem, Show
from recorders.models import Recorder, RecorderSchedule
from station.demo import DEMO_PASSWORD, DEMO_USERNAME
from station.models import Node, Studio


@pytest.mark.slow
@pytest.mark.django_db
def test_seed_demo_twice_leaves_one_demo_station(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    call_command("seed_demo")
    call_command("seed_demo")
    assert Studio.objects.count() == 1
    assert Node.objects.count() == 1
    assert Channel.objects.count() == 1
    assert Show.objects.count() == 1
    assert Recorder.objects.count() == 1
    assert RecorderSchedule.objects.get().recurrence == "daily"
    assert PlaylistItem.objects.count() == 3
    tones = MediaAsset.objects.all()
    assert tones.count() == 3
    assert all(t.status == "ready" and 19.5 < t.duration_seconds < 20.5 for t in tones)
    assert authenticate(username=DEMO_USERNAME, password=DEMO_PASSWORD) is not None


@pytest.mark.slow
@pytest.mark.django_db
def test_demo_login_opens_the_admin(client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    call_command("seed_demo")
    assert client.login(username=DEMO_USERNAME, password=DEMO_PASSWORD)
    page = client.get("/admin/")
    assert page.status_code == 200
    assert "Recorder schedules" in page.content.decode()
