"""What staff see and do in the ingest admin: progress, poll now, retry, publish again."""

import pytest
from django.urls import reverse
from django_q.models import OrmQ

from ingest.models import Download, IngestSource, Publication
from station.tests.factories import MediaAssetFactory

pytestmark = pytest.mark.django_db


def _queued_jobs(queue: str) -> list[str]:
    return [job.task["name"] for job in OrmQ.objects.filter(key=queue)]


def test_the_download_list_shows_progress_and_the_failure_reason(client, operator_a, studio_a):
    source = IngestSource.objects.create(studio=studio_a, name="Feed", url="http://127.0.0.1:9/feed.xml")
    Download.objects.create(source=source, item_key="a", url="http://127.0.0.1:9/a.mp3", title="Half there",
                            status="downloading", bytes_done=3 * 2**20, bytes_total=6 * 2**20)
    Download.objects.create(source=source, item_key="b", url="http://127.0.0.1:9/b.mp3", title="Broken",
                            status="failed", error_message="http://127.0.0.1:9/b.mp3 answered HTTP 404 Not Found.")
    client.force_login(operator_a)

    page = client.get(reverse("admin:ingest_download_changelist")).content.decode()

    assert "50%" in page and "3.0 / 6.0 MB" in page
    assert "answered HTTP 404 Not Found." in page


def test_poll_now_queues_a_poll_on_the_ingest_queue(client, operator_a, studio_a, django_capture_on_commit_callbacks):
    source = IngestSource.objects.create(studio=studio_a, name="Feed", url="http://127.0.0.1:9/feed.xml")
    client.force_login(operator_a)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:ingest_ingestsource_changelist"),
                               {"action": "poll_now", "_selected_action": [source.pk]}, follow=True)

    assert "Poll selected sources now: done for 1 item." in response.content.decode()
    assert _queued_jobs("ingest") == [f"ingest.poll:{source.pk}"]
    assert not _queued_jobs("playout")


def test_retry_and_publish_again_report_what_cannot_be_done(client, operator_a, studio_a, settings):
    settings.PUBLISH_URL = "http://127.0.0.1:9/archive"
    source = IngestSource.objects.create(studio=studio_a, name="Feed", url="http://127.0.0.1:9/feed.xml")
    done = Download.objects.create(source=source, item_key="a", url="http://127.0.0.1:9/a.mp3", title="Done",
                                   status="completed")
    publication = Publication.objects.create(asset=MediaAssetFactory(studio=studio_a), status="failed", attempts=8,
                                             last_error="The archive answered HTTP 503 Service Unavailable.")
    client.force_login(operator_a)

    retried = client.post(reverse("admin:ingest_download_changelist"),
                          {"action": "retry", "_selected_action": [done.pk]}, follow=True).content.decode()
    again = client.post(reverse("admin:ingest_publication_changelist"),
                        {"action": "publish_again", "_selected_action": [publication.pk]}, follow=True).content.decode()

    assert "Done is Completed; only a failed download can be retried." in retried
    assert "Publish selected again: done for 1 item." in again
    publication.refresh_from_db()
    assert (publication.status, publication.attempts) == ("pending", 0)


@pytest.mark.parametrize(("url_list", "message"), [
    ("http://127.0.0.1:9/a.mp3\nftp://example.org/b.mp3", "Only http(s) URLs can be downloaded: ftp://example.org/b.mp3"),
    ("# only a comment", "A URL list needs at least one URL."),
])
def test_a_url_list_that_cannot_be_fetched_is_refused_when_saved(url_list, message, client, operator_a, studio_a):
    client.force_login(operator_a)

    response = client.post(reverse("admin:ingest_ingestsource_add"), {
        "studio": studio_a.pk, "name": "Bulletins", "kind": "url_list", "url": "", "url_list": url_list,
        "poll_interval_minutes": 60, "enabled": "on", "remember_downloads": "on"})

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not IngestSource.objects.exists()
