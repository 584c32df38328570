import pytest
from django.urls import reverse

from recorders.models import Recorder
from station.tests.factories import RecorderFactory, StudioFactory

pytestmark = pytest.mark.django_db


def _change_url(obj):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def test_staff_of_studio_a_cannot_see_or_change_studio_b(client, studio_a, studio_b, operator_a):
    recorder_b = RecorderFactory(studio=studio_b, name="B's recorder")
    client.force_login(operator_a)
    assert client.get(_change_url(studio_b)).status_code == 404
    assert client.get(_change_url(recorder_b)).status_code == 404
    assert client.post(_change_url(recorder_b), {"name": "hijacked"}).status_code == 404
    listing = client.get(reverse("admin:recorders_recorder_changelist")).content.decode()
    assert "B&#x27;s recorder" not in listing and "B's recorder" not in listing
    studios = client.get(reverse("admin:station_studio_changelist")).content.decode()
    assert "Studio A" in studios and "Studio B" not in studios
    recorder_b.refresh_from_db()
    assert recorder_b.name == "B's recorder"


def test_staff_cannot_create_rows_in_another_studio(client, studio_a, studio_b, operator_a):
    client.force_login(operator_a)
    response = client.post(
        reverse("admin:recorders_recorder_add"),
        {
            "studio": studio_b.pk,
            "name": "Sneaky",
            "source_url": "http://example.org/stream",
            "output_format": "mp3",
            "segment_seconds": 600,
            "pre_roll_seconds": 0,
            "post_roll_seconds": 0,
            "enabled": "on",
            "schedules-TOTAL_FORMS": 0,
            "schedules-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Recorder.objects.filter(name="Sneaky").exists()


def test_operator_edits_own_studio(client, studio_a, operator_a):
    recorder = RecorderFactory(studio=studio_a)
    client.force_login(operator_a)
    page = client.get(_change_url(recorder))
    assert page.status_code == 200
    assert 'name="_save"' in page.content.decode()


def test_viewer_reads_but_cannot_change(client, studio_a, viewer_a):
    recorder = RecorderFactory(studio=studio_a, name="Read only")
    client.force_login(viewer_a)
    page = client.get(_change_url(recorder))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert client.post(_change_url(recorder), {"name": "changed"}).status_code == 403
    recorder.refresh_from_db()
    assert recorder.name == "Read only"


def test_superuser_sees_every_studio(client, studio_a, studio_b, superuser):
    RecorderFactory(studio=studio_b, name="Recorder in B")
    client.force_login(superuser)
    assert client.get(_change_url(studio_b)).status_code == 200
    assert "Recorder in B" in client.get(reverse("admin:recorders_recorder_changelist")).content.decode()


def test_staff_without_a_studio_sees_no_station_data(client, db):
    from station.tests.factories import UserFactory

    outsider = UserFactory(username="outsider")
    StudioFactory()
    client.force_login(outsider)
    assert client.get(reverse("admin:station_studio_changelist")).status_code == 403


def test_list_filters_never_name_other_studios(client, studio_a, studio_b, operator_a):
    from station.tests.factories import ScheduleFactory

    ScheduleFactory(recorder=RecorderFactory(studio=studio_a, name="A mic"))
    ScheduleFactory(recorder=RecorderFactory(studio=studio_b, name="B secret mic"))
    client.force_login(operator_a)
    page = client.get(reverse("admin:recorders_recorderschedule_changelist")).content.decode()
    assert "A mic" in page
    assert "B secret mic" not in page and "Studio B" not in page


def test_missing_foreign_and_malformed_ids_all_answer_404(client, studio_b, operator_a):
    recorder_b = RecorderFactory(studio=studio_b)
    client.force_login(operator_a)
    for object_id in [recorder_b.pk, 999999, "not-a-number"]:
        url = reverse("admin:recorders_recorder_change", args=[object_id])
        assert client.get(url).status_code == 404, object_id


def test_operators_cannot_delete_their_studio(client, studio_a, operator_a):
    client.force_login(operator_a)
    assert client.get(reverse("admin:station_studio_delete", args=[studio_a.pk])).status_code == 403
