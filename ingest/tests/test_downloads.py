"""Polling and downloading against a real local HTTP server, with real ffprobe and PostgreSQL."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from ingest import feeds, services
from ingest.models import Download, IngestSource, MediaAsset, PreviousDownload
from station.errors import UserError
from station.tests.concurrency import run_together

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback_allowed")]  # the media server is local


def _run_all_queued() -> list[Download]:
    return [services.download_run(download_id=pk) for pk in Download.objects.filter(status="queued").order_by("pk").values_list("pk", flat=True)]


def test_new_feed_items_become_ready_assets_with_their_duration(ingest_settings, server, tones, studio_a):
    server.add("ep1.mp3", tones["two"])
    server.add("ep2.mp3", tones["three"])
    server.feed_items = [("ep-2", "Episode two", "ep2.mp3"), ("ep-1", "Episode one", "ep1.mp3")]
    source = IngestSource.objects.create(studio=studio_a, name="Podcast", url=server.url("feed.xml"))

    queued = services.sources_poll_due(now=timezone.now())
    downloads = _run_all_queued()

    assert queued == 2
    assert [d.status for d in downloads] == ["completed", "completed"]
    by_title = {d.title: d.asset for d in downloads}
    assert by_title["Episode one"].duration_seconds == pytest.approx(2, abs=0.1)
    assert by_title["Episode two"].duration_seconds == pytest.approx(3, abs=0.1)
    assert by_title["Episode two"].status == MediaAsset.Status.READY
    assert by_title["Episode two"].checksum == hashlib.sha256(tones["three"].read_bytes()).hexdigest()
    assert (ingest_settings.MEDIA_ROOT / by_title["Episode one"].file.name).read_bytes() == tones["two"].read_bytes()
    assert downloads[0].bytes_done == downloads[0].bytes_total == tones["two"].stat().st_size
    assert set(PreviousDownload.objects.filter(source=source).values_list("item_key", flat=True)) == {"ep-1", "ep-2"}
    source.refresh_from_db()
    assert source.last_polled_at is not None and source.next_poll_at > timezone.now()


def test_a_remembered_item_is_never_fetched_again_even_after_its_download_row_is_gone(ingest_settings, server, tones, url_source):
    url = server.add("news.mp3", tones["two"])
    source = url_source(url)
    services.sources_poll_due(now=timezone.now())
    _run_all_queued()
    Download.objects.all().delete()

    services.source_poll(source=source)

    assert not Download.objects.exists()
    assert server.hits["/news.mp3"] == 1


def test_a_source_that_forgets_fetches_again_and_keeps_one_asset_for_the_same_content(ingest_settings, server, tones, url_source):
    source = url_source(server.add("news.mp3", tones["two"]), remember=False)
    services.source_poll(source=source)
    _run_all_queued()

    services.source_poll(source=source)
    again = _run_all_queued()

    assert server.hits["/news.mp3"] == 2
    assert again[0].status == Download.Status.COMPLETED
    assert MediaAsset.objects.count() == 1
    assert not PreviousDownload.objects.exists()


def test_the_same_url_in_two_sources_of_a_studio_is_downloaded_once(ingest_settings, server, tones, url_source):
    url = server.add("shared.mp3", tones["two"])
    url_source(url)
    IngestSource.objects.create(studio=url_source(url).studio, name="Other", kind="url_list", url_list=url)
    services.sources_poll_due(now=timezone.now())
    first, second = _run_all_queued()[:2]

    assert server.hits["/shared.mp3"] == 1
    assert {first.status, second.status} == {"completed", "skipped"}
    assert first.asset == second.asset


def test_an_interrupted_download_resumes_where_it_stopped(ingest_settings, server, tones, url_source):
    url = server.add("long.mp3", tones["three"])
    server.cut_times["/long.mp3"] = 1
    url_source(url)
    services.sources_poll_due(now=timezone.now())

    (download,) = _run_all_queued()

    size = tones["three"].stat().st_size
    assert download.status == Download.Status.COMPLETED
    assert server.range_requests == [("/long.mp3", f"bytes={size // 2}-")]
    assert download.asset.checksum == hashlib.sha256(tones["three"].read_bytes()).hexdigest()
    assert download.asset.duration_seconds == pytest.approx(3, abs=0.1)


def test_a_server_failing_a_few_times_is_retried_until_it_serves(ingest_settings, server, tones, url_source):
    url_source(server.add("flaky.mp3", tones["two"]))
    server.fail_times["/flaky.mp3"] = 2
    services.sources_poll_due(now=timezone.now())

    (download,) = _run_all_queued()

    assert download.status == Download.Status.COMPLETED
    assert server.hits["/flaky.mp3"] == 3


@pytest.mark.parametrize(("case", "reason"), [
    ("missing", "answered HTTP 404"),
    ("html", "sent text/html, not media"),
    ("fake", "is not a media file ffprobe can read"),
    ("truncated", "was interrupted (cut)"),
    ("stalled", "was interrupted (stalled)"),
    ("oversize", "is larger than the limit of 9.8 KB"),
    ("oversize_unannounced", "is larger than the limit of 9.8 KB"),
    ("slow", "took longer than 1 s to download"),
    ("always_failing", "answered HTTP 503"),
])
def test_every_bad_download_fails_with_its_reason_and_leaves_no_asset_or_partial_file(
        case, reason, ingest_settings, server, tones, url_source):
    path = {"missing": "nothing.mp3", "html": "page.html"}.get(case, f"{case}.mp3")
    if case not in ("missing", "html"):
        server.add(path, tones["fake"] if case == "fake" else tones["three"])
    if case in ("truncated", "stalled", "slow"):
        getattr(server, {"truncated": "truncated", "stalled": "stalled", "slow": "trickled"}[case]).add(f"/{path}")
    if case.startswith("oversize"):
        ingest_settings.INGEST_MAX_BYTES = 10_000
        if case == "oversize_unannounced":
            server.no_length.add(f"/{path}")
    if case == "slow":
        ingest_settings.INGEST_DOWNLOAD_TIMEOUT_SECONDS = 1
    if case == "always_failing":
        server.fail_times[f"/{path}"] = 100
    url_source(server.url(path))
    services.sources_poll_due(now=timezone.now())

    (download,) = _run_all_queued()

    assert download.status == Download.Status.FAILED
    assert reason in download.error_message
    assert download.asset is None
    assert not MediaAsset.objects.exists()
    assert not list((ingest_settings.MEDIA_ROOT / "ingest" / "partial").glob("*"))
    assert not (ingest_settings.MEDIA_ROOT / "library").exists()


@pytest.mark.parametrize("name", ["%F0%9F%8E%99", "%40%40", "~"])
def test_an_item_whose_url_names_no_file_is_stored_as_media(name, ingest_settings, server, tones, url_source):
    url_source(server.add(name, tones["two"]))
    services.sources_poll_due(now=timezone.now())

    (download,) = _run_all_queued()

    assert download.status == Download.Status.COMPLETED
    stored = ingest_settings.MEDIA_ROOT / download.asset.file.name
    assert stored.name.endswith("-media") and stored.parent.is_relative_to(ingest_settings.MEDIA_ROOT / "library")
    assert stored.read_bytes() == tones["two"].read_bytes()


def test_a_file_the_library_cannot_take_fails_its_download_with_the_reason_and_is_not_fetched_again(
        ingest_settings, server, tones, url_source):
    ingest_settings.MEDIA_ROOT.mkdir(parents=True, exist_ok=True)
    (ingest_settings.MEDIA_ROOT / "library").write_text("a file where the library's folder should be")
    url_source(server.add("news.mp3", tones["two"]))
    services.sources_poll_due(now=timezone.now())

    (download,) = _run_all_queued()
    services.downloads_requeue_stale(now=timezone.now() + timedelta(hours=1))

    assert download.status == Download.Status.FAILED
    assert "could not be stored in the library" in download.error_message
    assert not MediaAsset.objects.exists()
    assert not list((ingest_settings.MEDIA_ROOT / "ingest" / "partial").glob("*"))
    assert not Download.objects.filter(status__in=["queued", "downloading"]).exists()
    assert server.hits["/news.mp3"] == 1


def test_a_feed_item_whose_url_is_too_long_to_keep_is_left_out_with_the_reason_and_the_rest_is_fetched(
        ingest_settings, server, tones, studio_a):
    server.add("ep1.mp3", tones["two"])
    server.feed_items = [("ep-2", "Tracked", "ep2.mp3?" + "t" * 2100), ("ep-1", "Episode one", "ep1.mp3")]
    source = IngestSource.objects.create(studio=studio_a, name="Podcast", url=server.url("feed.xml"))
    url_list = IngestSource.objects.create(studio=studio_a, name="Long lines", kind=IngestSource.Kind.URL_LIST,
                                           url_list=server.add("a" * 600 + ".mp3", tones["three"]))

    services.sources_poll_due(now=timezone.now())
    downloads = _run_all_queued()

    assert sorted((d.source_id, d.status) for d in downloads) == [(source.pk, "completed"), (url_list.pk, "completed")]
    source.refresh_from_db()
    assert source.last_error == "1 items were left out: their URLs are longer than 2000 characters."
    url_list.refresh_from_db()
    assert url_list.last_error == ""  # a line longer than an item key is kept by its digest


def test_a_feed_with_more_items_than_a_poll_takes_queues_its_newest_and_says_so(ingest_settings, server, studio_a):
    server.feed_items = [(f"ep-{n}", f"Episode {n}", f"ep{n}.mp3") for n in range(620, 0, -1)]  # newest first
    source = IngestSource.objects.create(studio=studio_a, name="Back catalogue", url=server.url("feed.xml"))

    queued = services.sources_poll_due(now=timezone.now())

    assert queued == 500
    assert set(Download.objects.values_list("item_key", flat=True)) == {f"ep-{n}" for n in range(121, 621)}
    source.refresh_from_db()
    assert source.last_error == "Only the newest 500 of its 620 items are taken."


def test_a_source_whose_items_cannot_be_queued_says_why_and_the_others_in_its_pass_are_polled(
        ingest_settings, server, tones, studio_a, monkeypatch):
    bad = IngestSource.objects.create(studio=studio_a, name="Bad", kind=IngestSource.Kind.URL_LIST,
                                      url_list=server.url("bad.mp3"))
    good = IngestSource.objects.create(studio=studio_a, name="Good", kind=IngestSource.Kind.URL_LIST,
                                       url_list=server.add("good.mp3", tones["two"]))
    queue_items = services.polling.downloads_queue_items

    def refusing_the_bad_one(*, source, items):
        if source.pk == bad.pk:  # data no rule of ours foresaw, refused by the database
            return queue_items(source=source, items=[feeds.Item(key="k", url="http://x/" + "y" * 3000, title="")])
        return queue_items(source=source, items=items)

    monkeypatch.setattr(services.polling, "downloads_queue_items", refusing_the_bad_one)

    services.sources_poll_due(now=timezone.now())

    assert list(Download.objects.values_list("source", flat=True)) == [good.pk]
    bad.refresh_from_db()
    assert bad.last_error.startswith("Its items could not be queued: value too long")


def test_a_failed_download_can_be_retried_and_then_succeeds(ingest_settings, server, tones, url_source):
    url_source(server.add("later.mp3", tones["two"]))
    server.fail_times["/later.mp3"] = 3
    services.sources_poll_due(now=timezone.now())
    (failed,) = _run_all_queued()
    first_reason = failed.error_message

    services.download_retry(download=failed)
    (retried,) = _run_all_queued()

    assert "answered HTTP 503" in first_reason
    assert retried.status == Download.Status.COMPLETED
    assert retried.attempts == 2


@pytest.mark.parametrize(("case", "reason"), [("missing", "answered HTTP 404"), ("not_a_feed", "is not an RSS or Atom feed")])
def test_a_feed_that_cannot_be_read_keeps_its_reason_on_the_source(case, reason, ingest_settings, server, tones, studio_a):
    url = server.url("gone.xml") if case == "missing" else server.add("not-a-feed.mp3", tones["fake"])
    source = IngestSource.objects.create(studio=studio_a, name="Broken", url=url)

    services.sources_poll_due(now=timezone.now())

    source.refresh_from_db()
    assert reason in source.last_error
    assert not Download.objects.exists()


def test_a_url_list_with_a_non_http_line_is_refused_with_the_line(ingest_settings, url_source):
    source = url_source("ftp://example.org/a.mp3")
    services.source_poll(source=source)
    source.refresh_from_db()
    assert "Only http(s) URLs can be downloaded: ftp://example.org/a.mp3" in source.last_error


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_on_one_item_download_it_once(ingest_settings, server, tones, url_source):
    url_source(server.add("race.mp3", tones["three"]))
    server.trickled.add("/race.mp3")  # slow enough that both workers are at it together
    services.sources_poll_due(now=timezone.now())
    download = Download.objects.get()
    results = run_together(2, lambda: services.download_run(download_id=download.pk))

    assert server.hits["/race.mp3"] == 1
    assert sorted(result is None for result in results) == [False, True]  # one skipped at once
    assert Download.objects.get().status == Download.Status.COMPLETED
    assert MediaAsset.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_pollers_never_take_the_same_source(ingest_settings, studio_a):
    for n in range(30):
        IngestSource.objects.create(studio=studio_a, name=f"Source {n}", kind="url_list")
    now = timezone.now()

    def poll_until_none_due():
        while claimed := services.sources_claim_due(now=now, limit=3):
            taken.extend(source.pk for source in claimed)

    taken = []
    run_together(3, poll_until_none_due)

    assert sorted(taken) == sorted(IngestSource.objects.values_list("pk", flat=True))


def test_a_download_left_behind_by_a_dead_worker_is_queued_again_and_finished(
        ingest_settings, server, tones, url_source, django_capture_on_commit_callbacks):
    url_source(server.add("orphan.mp3", tones["two"]))
    services.sources_poll_due(now=timezone.now())
    long_ago = timezone.now() - timedelta(minutes=10)
    Download.objects.update(status=Download.Status.DOWNLOADING, bytes_done=1000, updated_at=long_ago)

    with django_capture_on_commit_callbacks(execute=True):
        requeued = services.downloads_requeue_stale(now=timezone.now())
    download = services.download_run(download_id=Download.objects.get().pk)

    assert requeued == 1
    assert [job.task["name"] for job in OrmQ.objects.filter(key="ingest")] == [f"ingest.download:{download.pk}"]
    assert download.status == Download.Status.COMPLETED and download.attempts == 1


def test_a_disabled_source_is_not_polled_and_poll_now_says_why(ingest_settings, url_source):
    source = url_source("http://127.0.0.1:9/a.mp3")
    source.enabled = False
    source.save()

    assert services.sources_claim_due(now=timezone.now()) == []
    with pytest.raises(UserError) as raised:
        services.source_poll_soon(source=source)
    assert raised.value.code == "source_disabled"
