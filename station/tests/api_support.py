"""Fixtures and checks shared by every app's API tests (registered in the top conftest.py)."""

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

ROLES = ("anonymous", "operator_a", "viewer_a", "operator_b", "superuser")
UNTHROTTLED = {"anon": "1000000/minute", "user": "1000000/minute"}


def token_client(user=None) -> APIClient:
    """A client that authenticates as ``user`` with its API token; anonymous without one."""
    client = APIClient()
    if user is not None:
        key = Token.objects.get_or_create(user=user)[0].key
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def api_rates(settings):
    """Set the API's throttle rates for one test (unthrottled unless the test says otherwise)."""
    def set_rates(**rates):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**UNTHROTTLED, **rates}}
        cache.clear()  # throttle history lives in the cache

    set_rates()
    return set_rates


@pytest.fixture
def api(db, api_rates) -> Callable[..., APIClient]:
    return token_client


@pytest.fixture
def role_users(operator_a, viewer_a, operator_b, superuser) -> dict:
    return {"anonymous": None, "operator_a": operator_a, "viewer_a": viewer_a, "operator_b": operator_b,
            "superuser": superuser}


# Expected write statuses for a resource only the station writes (the as-run log, recordings).
READ_ONLY = {"anonymous": 401, "operator_a": 405, "viewer_a": 403, "operator_b": 405, "superuser": 405}


@dataclass
class Resource:
    """How to check one resource's permissions: a row of studio A and one write on it."""

    path: str  # e.g. "schedules"
    make: Callable  # studio -> a fresh row of that studio
    write: tuple[str, str, dict] = ("patch", "", {})  # (method, action path under the row, body)
    # Expected status of the write per role (defaults: operators of the row's studio and superusers may write).
    write_status: dict = field(default_factory=lambda: {"anonymous": 401, "operator_a": 200, "viewer_a": 403,
                                                        "operator_b": 404, "superuser": 200})
    shared: bool = False  # rows every studio sees (nodes)


def assert_permission_matrix(resource: Resource, users: dict, studio_a) -> None:
    """List, read and write one resource as each role; other studios' rows are 404, viewers' writes 403."""
    for role in ROLES:
        row = resource.make(studio_a)
        client = token_client(users[role])
        visible = role in ("operator_a", "viewer_a", "superuser") or (resource.shared and role != "anonymous")
        listing = client.get(f"/api/v1/{resource.path}/")
        detail = client.get(f"/api/v1/{resource.path}/{row.pk}/")
        method, action_path, body = resource.write
        written = getattr(client, method)(f"/api/v1/{resource.path}/{row.pk}/{action_path}", body, format="json")
        context = f"{resource.path} as {role}"
        if role == "anonymous":
            assert (listing.status_code, detail.status_code) == (401, 401), context
            assert listing.json()["error"]["code"] == "not_authenticated", context
        else:
            assert listing.status_code == 200, context
            assert (row.pk in [item["id"] for item in listing.json()["results"]]) is visible, context
            assert detail.status_code == (200 if visible else 404), context
        assert written.status_code == resource.write_status[role], f"{context}: {written.status_code} {written.content[:300]}"
        if written.status_code >= 400:
            assert set(written.json()["error"]) == {"code", "message", "params", "fields"}, context


def assert_list_queries_flat(client: APIClient, path: str, make_rows: Callable[[int], object]) -> None:
    """A list page costs the same number of queries for 5 rows as for 100 (no query per row)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path, {"page_size": 100})
        assert response.status_code == 200, response.content[:300]
        return len(captured)

    make_rows(5)
    few = queries_for_page()
    make_rows(95)
    many = queries_for_page()
    assert client.get(path, {"page_size": 100}).json()["count"] >= 100
    assert many == few, f"{path}: {few} queries for 5 rows, {many} for 100"
