"""Hostile input to the REST API (issue 14): bodies, unknown fields, filters and uploads answer 4xx, never 500."""

import json
import socket
import subprocess
import sys
import time

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token
from django.core.files.uploadedfile import SimpleUploadedFile
from django_filters import filters as django_filters

from ingest.models import IngestSource, MediaAsset
from playout.models import Channel, Playlist, Podcast, Show
from recorders.models import Recorder, RecorderSchedule
from station.api.filters import StationFilterBackend
from station.api.parsers import MAX_DEPTH
from station.api.urls import router
from station.models import Studio
from recorders.tests.stream_server import closed_port
from station.tests import factories
from station.tests.processes import database_env, stop

ERROR_KEYS = {"code", "message", "params", "fields"}
DEEP = 100_000

HUGE_INTEGER = "9" * 400


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content[:300]
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS
    if code is not None:
        assert error["code"] == code, error
    return error


# -- Bodies the JSON parser refuses ------------------------------------------------------------------------------

HOSTILE_BODIES = {
    "deep list": ("[" * DEEP + "]" * DEEP, "nesting_too_deep"),
    "deep object": ('{"a":' * DEEP + "1" + "}" * DEEP, "nesting_too_deep"),
    "deep inside a field": ('{"name": "x", "studio": ' + "[" * DEEP + "]" * DEEP + "}", "nesting_too_deep"),
    "1e400": ('{"studio": 1e400}', "number_not_finite"),
    "-1e400": ('{"studio": -1e400}', "number_not_finite"),
    "NaN": ('{"studio": NaN}', "number_not_finite"),
    "Infinity": ('{"studio": Infinity}', "number_not_finite"),
    "-Infinity": ('{"studio": -Infinity}', "number_not_finite"),
    "400 digits": ('{"studio": %s}' % HUGE_INTEGER, "number_out_of_range"),
    "-400 digits": ('{"studio": -%s}' % HUGE_INTEGER, "number_out_of_range"),
    "just past 64 bits": ('{"studio": 9223372036854775808}', "number_out_of_range"),
    "10000 digits": ('{"studio": %s}' % ("9" * 10_000), "number_out_of_range"),
}


@pytest.mark.parametrize("size", [65_536, 2_000_000])
def test_an_unterminated_string_of_escaped_quotes_is_answered_at_once(api, size):
    """The depth check skips strings: a pattern retried at every quote made 64 KB of them take 30 s of CPU."""
    body = "[" * (MAX_DEPTH + 1) + '"' + '\\"' * (size // 2)
    started = time.monotonic()
    response = _post_raw(api(), "/api/v1/auth/token/", body)
    assert response.status_code == 400 and time.monotonic() - started < 1


def _post_raw(client, path: str, body, method: str = "post"):
    raw = body if isinstance(body, bytes) else body.encode()
    return getattr(client, method)(path, raw, content_type="application/json")


@pytest.mark.parametrize("attack", HOSTILE_BODIES, ids=list(HOSTILE_BODIES))
def test_hostile_json_is_a_400_on_writes_and_on_the_anonymous_token_endpoint(api, operator_a, studio_a, attack):
    body, code = HOSTILE_BODIES[attack]
    recorder = factories.RecorderFactory(studio=studio_a)
    asset = factories.MediaAssetFactory(studio=studio_a)
    client = api(operator_a)
    answers = {
        "create": _post_raw(client, "/api/v1/recorders/", body),
        "update": _post_raw(client, f"/api/v1/recorders/{recorder.pk}/", body, "patch"),
        "media title": _post_raw(client, f"/api/v1/media/{asset.pk}/", body, "patch"),  # a view with parsers of its own
        "token": _post_raw(api(), "/api/v1/auth/token/", body),
    }
    for where, response in answers.items():
        assert response.status_code == 400, f"{where}: {response.status_code} {response.content[:200]}"
        assert_error(response, 400, code)
    recorder.refresh_from_db()
    assert Recorder.objects.count() == 1 and recorder.name.startswith("Recorder")


def test_ids_and_counts_refuse_fractions_and_huge_floats_and_ordinary_bodies_pass(api, operator_a, studio_a):
    client = api(operator_a)
    recorder = {"studio": studio_a.pk, "name": "r", "source_url": "tone:1000"}
    for value in (studio_a.pk + 0.5, 1e300, -1e300, 2.5e18, 2**63 - 1):  # (x.5 would have been read as row x)
        as_id = _post_raw(client, "/api/v1/recorders/", json.dumps({**recorder, "studio": value}))
        assert list(assert_error(as_id, 400)["fields"]) == ["studio"], value
    for value in (0.5, 1e300, 2.5e18, 2**63 - 1):
        as_count = _post_raw(client, "/api/v1/recorders/", json.dumps({**recorder, "segment_seconds": value}))
        assert list(assert_error(as_count, 400)["fields"]) == ["segment_seconds"], value
    assert not Recorder.objects.exists()
    assert _post_raw(client, "/api/v1/recorders/", json.dumps(recorder)).status_code == 201
    nested = {"port": 8100}
    for _level in range(20):  # within the limit: the field's own verdict, not the parser's
        nested = {"nested": nested}
    channel = _post_raw(client, "/api/v1/channels/", json.dumps(
        {"studio": studio_a.pk, "name": "C", "slug": "c", "output_type": "harbor", "output_settings": nested}))
    assert channel.status_code == 201 or channel.json()["error"]["code"] not in ("parse_error", "nesting_too_deep")
    for broken in (b'{"name": "\xff\xfe"}', b'{"name": '):  # not UTF-8, not JSON: as before
        assert_error(_post_raw(client, "/api/v1/recorders/", broken), 400, "parse_error")


def test_a_json_body_over_the_memory_limit_is_a_413(api, operator_a, studio_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"studio": studio_a.pk, "name": "x" * 5000, "source_url": "tone:1000"})
    assert_error(_post_raw(api(operator_a), "/api/v1/recorders/", body), 413, "too_large")
    assert_error(_post_raw(api(), "/api/v1/auth/token/", json.dumps({"username": "u" * 5000, "password": "p"})),
                 413, "too_large")
    assert not Recorder.objects.exists()
    form = api().post("/api/v1/auth/token/", f"username={'u' * 5000}&password=p",
                      content_type="application/x-www-form-urlencoded")
    assert_error(form, 413, "too_large")  # Django's own limit on form bodies, in the one error shape


def test_a_form_with_too_many_fields_is_a_400_in_the_error_shape(api, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 100
    body = "&".join(f"f{n}=x" for n in range(101))
    form = api().post("/api/v1/auth/token/", body, content_type="application/x-www-form-urlencoded")
    assert_error(form, 400, "too_many_fields")


# -- Query strings --------------------------------------------------------------------------------------------

GARBAGE_QUERY_VALUES = ["1e400", "99999999999999999999999", "-99999999999999999999999", "NaN", "Infinity", "-1", "1.5",
                        "9223372036854775808", "2026-13-45T99:99:99Z", "9999999-01-01T00:00:00Z", "\x00", "[]", "{}"]


def _list_viewsets():
    return [(prefix, viewset) for prefix, viewset, _basename in router.registry]


def _filterset_of(viewset):
    return StationFilterBackend().get_filterset_class(viewset(), viewset.queryset.all())


@pytest.mark.parametrize("prefix,viewset", _list_viewsets(), ids=[prefix for prefix, _ in _list_viewsets()])
def test_garbage_in_any_list_filter_is_a_400_or_ignored_never_a_500(api, superuser, prefix, viewset):
    client = api(superuser)
    filterset = _filterset_of(viewset)
    names = [*(filterset.base_filters if filterset else ()), "page", "page_size", "ordering"]
    for name in names:
        for value in GARBAGE_QUERY_VALUES:
            response = client.get(f"/api/v1/{prefix}/", {name: value})
            assert response.status_code in (200, 400, 404), f"{prefix}?{name}={value!r}: {response.status_code}"
            if response.status_code != 200:
                assert set(response.json()["error"]) == ERROR_KEYS


# -- Unknown fields -------------------------------------------------------------------------------------------

def test_a_misspelt_field_is_refused_with_the_field_it_resembles(api, superuser):
    response = api(superuser).post("/api/v1/studios/", {"name": "New", "slug": "new", "timezone": "Europe/London"},
                                   format="json")
    error = assert_error(response, 400, "unknown_field")
    assert error["message"] == "Unknown field timezone; did you mean time_zone?"
    assert error["params"] == {"field": "timezone", "suggestion": "time_zone"}
    assert list(error["fields"]) == ["timezone"]
    assert not Studio.objects.filter(slug="new").exists()


def test_a_row_read_can_be_written_back_but_a_misspelt_field_changes_nothing(api, operator_a, studio_a):
    schedule = factories.ScheduleFactory(recorder__studio=studio_a, name="Before")
    client = api(operator_a)
    row = client.get(f"/api/v1/schedules/{schedule.pk}/").json()
    misspelt = client.patch(f"/api/v1/schedules/{schedule.pk}/", {"name": "After", "endat": row["end_at"]},
                            format="json")
    error = assert_error(misspelt, 400, "unknown_field")
    assert error["params"] == {"field": "endat", "suggestion": "end_at"}
    schedule.refresh_from_db()
    assert schedule.name == "Before"
    # Read-only fields (id, status, created_at…) are known: sent back, they are ignored.
    written_back = client.put(f"/api/v1/schedules/{schedule.pk}/", {**row, "name": "Renamed", "status": "cancelled"},
                              format="json")
    assert written_back.status_code == 200, written_back.content[:300]
    schedule.refresh_from_db()
    assert (schedule.name, schedule.status) == ("Renamed", "pending")


def test_an_unknown_field_nothing_resembles_is_named_alone(api, operator_a, studio_a):
    body = {"studio": studio_a.pk, "name": "r", "source_url": "tone:1000", "zzz": 1}
    response = api(operator_a).post("/api/v1/recorders/", body, format="json")
    error = assert_error(response, 400, "unknown_field")
    assert error["message"] == "Unknown field zzz."
    assert error["params"] == {"field": "zzz", "suggestion": None}


def test_several_unknown_fields_are_each_listed(api, operator_a, studio_a):
    response = api(operator_a).post("/api/v1/recorders/", {"studio": studio_a.pk, "nmae": "r", "%(x)s": "x"},
                                    format="json")
    error = assert_error(response, 400, "unknown_field")
    assert error["fields"] == {"nmae": ["Unknown field nmae; did you mean name?"], "%(x)s": ["Unknown field %(x)s."]}
    assert error["params"] == {"fields": "%(x)s, nmae"}


def test_a_field_name_like_a_message_template_is_named_as_it_is(api, operator_a, studio_a):
    response = api(operator_a).post("/api/v1/recorders/", {"%(field)s%s": 1}, format="json")
    error = assert_error(response, 400, "unknown_field")
    assert error["message"] == "Unknown field %(field)s%s."


def _writable_paths():
    return [prefix for prefix, viewset, _ in router.registry if hasattr(viewset, "create")]


@pytest.mark.parametrize("prefix", _writable_paths())
def test_every_create_refuses_unknown_fields(api, superuser, prefix):
    response = api(superuser).post(f"/api/v1/{prefix}/", {"surely_not_a_field": 1}, format="json")
    error = assert_error(response, 400, "unknown_field")
    assert error["params"]["field"] == "surely_not_a_field"


def test_the_upload_refuses_unknown_multipart_fields(api, operator_a, studio_a, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    response = api(operator_a).post("/api/v1/media/", {"studio": studio_a.pk, "titel": "Typo",
                                                       "file": SimpleUploadedFile("a.mp3", b"abc")}, format="multipart")
    error = assert_error(response, 400, "unknown_field")
    assert error["params"] == {"field": "titel", "suggestion": "title"}
    assert not any(tmp_path.rglob("*.*")) and not MediaAsset.objects.exists()


def test_the_token_endpoint_refuses_unknown_fields(api, operator_a):
    from station.tests.factories import PASSWORD

    response = api().post("/api/v1/auth/token/", {"username": "operator_a", "pasword": PASSWORD}, format="json")
    error = assert_error(response, 400, "unknown_field")
    assert error["params"] == {"field": "pasword", "suggestion": "password"}


def test_the_schema_says_request_bodies_take_no_other_fields(api, db):
    schema = api().get("/api/schema/", {"format": "json"}).json()
    bodies = {name: component for name, component in schema["components"]["schemas"].items()
              if name.endswith("Request")}
    assert {"StudioRequest", "PatchedRecorderRequest", "MediaUploadRequest", "AuthTokenRequest"} <= set(bodies)
    assert all(component.get("additionalProperties") is False for component in bodies.values()), [
        name for name, component in bodies.items() if component.get("additionalProperties") is not False]
    assert "unknown_field" in schema["info"]["description"]


# -- Related-row filters: another studio's row and a missing one answer alike ---------------------------------------

def _row_of(model, studio):
    makers = {
        Studio: lambda: studio,
        Recorder: lambda: factories.RecorderFactory(studio=studio),
        RecorderSchedule: lambda: factories.ScheduleFactory(recorder__studio=studio),
        Channel: lambda: factories.ChannelFactory(studio=studio),
        Show: lambda: factories.ShowFactory(channel__studio=studio),
        Podcast: lambda: Podcast.objects.create(show=factories.ShowFactory(channel__studio=studio, record_air=True)),
        Playlist: lambda: factories.PlaylistFactory(studio=studio),
        MediaAsset: lambda: factories.MediaAssetFactory(studio=studio),
        IngestSource: lambda: IngestSource.objects.create(studio=studio, name="Feed", kind="url_list",
                                                          url_list="https://example.org/a.mp3"),
    }
    assert model in makers, f"no row maker for {model.__name__}: add one so its filters are checked"
    return makers[model]()


def _studio_row_filters():
    """(list path, filter name, related model) for every filter that names a row of a studio."""
    found = []
    for prefix, viewset in _list_viewsets():
        filterset = _filterset_of(viewset)
        for name, list_filter in (filterset.base_filters.items() if filterset else ()):
            if isinstance(list_filter, django_filters.ModelChoiceFilter | django_filters.ModelMultipleChoiceFilter):
                model = list_filter.queryset.model
                if hasattr(model._default_manager, "visible_to"):
                    found.append((prefix, name, model))
    return found


@pytest.mark.parametrize("prefix,name,model", _studio_row_filters(),
                         ids=[f"{prefix}?{name}" for prefix, name, _ in _studio_row_filters()])
def test_another_studios_row_in_a_filter_answers_like_a_missing_one(api, operator_a, superuser, studio_a, studio_b,
                                                                     prefix, name, model):
    assert {("recorders", "studio"), ("schedules", "recorder"), ("schedules", "studio"), ("shows", "channel"),
            ("shows", "playlist"), ("downloads", "source"), ("downloads", "asset"), ("as-run", "channel"),
            ("playlist-items", "asset"), ("alerts", "studio")} <= {(p, n) for p, n, _ in _studio_row_filters()}
    own, others = _row_of(model, studio_a), _row_of(model, studio_b)
    missing = max(own.pk, others.pk) + 1000
    client = api(operator_a)
    assert client.get(f"/api/v1/{prefix}/", {name: own.pk}).status_code == 200
    other_studio = client.get(f"/api/v1/{prefix}/", {name: others.pk})
    nonexistent = client.get(f"/api/v1/{prefix}/", {name: missing})
    assert (other_studio.status_code, other_studio.json()) == (nonexistent.status_code, nonexistent.json())
    assert_error(other_studio, 400, "invalid_choice")
    assert api(superuser).get(f"/api/v1/{prefix}/", {name: others.pk}).status_code == 200  # superusers see every studio


# -- Upload size ----------------------------------------------------------------------------------------------

BOUNDARY = "stationkeeperboundary"


def _multipart(studio_id: int, payload: bytes) -> bytes:
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="studio"\r\n\r\n{studio_id}\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.mp3"\r\n'
            "Content-Type: audio/mpeg\r\n\r\n").encode() + payload + f"\r\n--{BOUNDARY}--\r\n".encode()


def test_an_upload_announced_over_the_limit_is_refused_before_its_body_is_read(api, operator_a, studio_a, settings,
                                                                                tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.UPLOAD_MAX_BYTES = 100 * 2**20
    # The body is a few bytes; reading the announced 300 MB of it would fail the test client's payload.
    response = api(operator_a).generic("POST", "/api/v1/media/", _multipart(studio_a.pk, b"ID3"),
                                       content_type=f"multipart/form-data; boundary={BOUNDARY}",
                                       CONTENT_LENGTH=str(300 * 2**20))
    error = assert_error(response, 413, "too_large")
    assert error["params"]["max_bytes"] == 100 * 2**20
    assert not any(tmp_path.rglob("*.*")) and not MediaAsset.objects.exists()


def test_an_upload_over_the_limit_is_refused_and_not_kept(api, operator_a, studio_a, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.UPLOAD_MAX_BYTES = 4096
    response = api(operator_a).post("/api/v1/media/", {"studio": studio_a.pk,
                                                       "file": SimpleUploadedFile("a.mp3", b"\0" * 10_000)},
                                    format="multipart")
    assert_error(response, 413, "too_large")
    assert not any(tmp_path.rglob("*.*")) and not MediaAsset.objects.exists()


def test_the_upload_handler_stops_reading_once_the_file_passes_the_limit(settings):
    from django.core.exceptions import RequestDataTooBig

    from ingest.uploads import UploadLimitHandler

    settings.UPLOAD_MAX_BYTES = 1000
    handler = UploadLimitHandler()
    handler.handle_raw_input(None, {}, 0, BOUNDARY)  # a chunked body: no length announced
    handler.new_file("file", "a.mp3", "audio/mpeg", None)
    assert handler.receive_data_chunk(b"\0" * 600, 0) == b"\0" * 600
    with pytest.raises(RequestDataTooBig):
        handler.receive_data_chunk(b"\0" * 600, 600)


def test_a_real_300_mb_upload_is_answered_at_once(live_server, settings, tmp_path):
    from rest_framework.authtoken.models import Token

    settings.MEDIA_ROOT = tmp_path
    settings.UPLOAD_MAX_BYTES = 100 * 2**20
    studio = factories.StudioFactory(slug="live")
    operator = factories.member_of(studio, username="uploader")
    token = Token.objects.create(user=operator).key
    head = _multipart(studio.pk, b"ID3")[:-len(f"\r\n--{BOUNDARY}--\r\n")]
    request = (f"POST /api/v1/media/ HTTP/1.1\r\nHost: {live_server.thread.host}\r\nAuthorization: Token {token}\r\n"
               f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
               f"Content-Length: {300 * 2**20}\r\n\r\n").encode()
    started = time.monotonic()
    with socket.create_connection((live_server.thread.host, live_server.thread.port), timeout=5) as connection:
        connection.sendall(request + head)  # and nothing more of the 300 MB it announced
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    elapsed = time.monotonic() - started
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line, answer[:300]
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == "too_large"
    assert elapsed < 2
    assert not any(tmp_path.rglob("*.*")) and not MediaAsset.objects.exists()


def _chunked(size: int) -> bytes:
    return b"%x\r\n" % size + b"\0" * size + b"\r\n"


MULTIPART = b"Content-Type: multipart/form-data; boundary=x\r\n"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("framing, head, body", [
    ("announced upload", MULTIPART + b"Content-Length: 300000000\r\n", b"\0" * 65536),  # the first 64 KB of 300 MB
    ("chunked upload", MULTIPART + b"Transfer-Encoding: chunked\r\n", _chunked(1 << 20) * 3),  # past it, unannounced
    # Not a file: held to DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), not to the uploads' limit.
    ("announced JSON", b"Content-Type: application/json\r\nContent-Length: 3000000\r\n", b"[" * 65536),
])
def test_the_station_as_daphne_serves_it_refuses_a_body_over_the_limit_as_it_arrives(operator_a, tmp_path, framing,
                                                                                      head, body):
    """Through a real Daphne serving station.asgi: Twisted would store the whole body before Django runs."""
    token = Token.objects.get_or_create(user=operator_a)[0].key
    port = closed_port()
    web = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "station.asgi:application"],
                           cwd=settings.BASE_DIR, env=database_env(MEDIA_ROOT=tmp_path / "media", UPLOAD_MAX_BYTES=1_000_000))
    try:
        request = (b"POST /api/v1/media/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token " + token.encode()
                   + b"\r\n" + head + b"\r\n")
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "daphne did not come up"
                time.sleep(0.2)
        with connection:
            started = time.monotonic()
            connection.sendall(request + body)
            answer = connection.recv(65536)
            elapsed = time.monotonic() - started
    finally:
        stop(web)

    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line, answer[:300]
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == "too_large"
    assert elapsed < 2
    assert not (tmp_path / "media").exists() or not any((tmp_path / "media").rglob("*.*"))
