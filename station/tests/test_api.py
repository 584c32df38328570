"""The API's core: auth, studio permissions, the one error shape, throttling, the schema and its docs."""

from datetime import timedelta

import pytest
from django.utils import timezone

from station.models import Alert, Node, StudioMembership
from station.tests import factories
from station.tests.api_support import Resource, assert_list_queries_flat, assert_permission_matrix, token_client

ERROR_KEYS = {"code", "message", "params", "fields"}


def test_token_from_username_and_password(api, operator_a):
    response = api().post("/api/v1/auth/token/", {"username": "operator_a", "password": factories.PASSWORD}, format="json")
    assert response.status_code == 200
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/v1/studios/").json()["count"] == 1


def test_wrong_password_is_a_400_in_the_error_shape(api, operator_a):
    response = api().post("/api/v1/auth/token/", {"username": "operator_a", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "authorization"


def test_wrong_token_is_401_with_the_way_to_authenticate(api, db):
    client = api()
    client.credentials(HTTP_AUTHORIZATION="Token 0000")
    response = client.get("/api/v1/studios/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_deactivated_users_token_is_refused(api, operator_a):
    client = api(operator_a)
    assert client.get("/api/v1/studios/").status_code == 200
    operator_a.is_active = False
    operator_a.save(update_fields=["is_active"])
    response = client.get("/api/v1/studios/")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "authentication_failed")


def test_a_role_taken_away_is_seen_by_the_next_request(api, operator_a, studio_a):
    client = api(operator_a)
    body = {"name": "Renamed"}
    recorder = factories.RecorderFactory(studio=studio_a)
    assert client.patch(f"/api/v1/recorders/{recorder.pk}/", body, format="json").status_code == 200
    operator_a.studio_memberships.update(role="viewer")
    assert client.patch(f"/api/v1/recorders/{recorder.pk}/", body, format="json").status_code == 403


def test_session_auth_works_too(api, client, operator_a):
    client.force_login(operator_a)
    assert client.get("/api/v1/studios/").json()["count"] == 1


def test_studios_permission_matrix(api, role_users, studio_a, studio_b):
    studio = Resource("studios", make=lambda studio: studio, write=("patch", "", {"time_zone": "Europe/Paris"}))
    assert_permission_matrix(studio, role_users, studio_a)


def test_only_superusers_create_and_delete_studios(api, operator_a, superuser, studio_a):
    body = {"name": "Studio C", "slug": "c", "time_zone": "America/New_York"}
    assert api(operator_a).post("/api/v1/studios/", body, format="json").status_code == 403
    assert api(operator_a).delete(f"/api/v1/studios/{studio_a.pk}/").status_code == 403
    created = api(superuser).post("/api/v1/studios/", body, format="json")
    assert created.status_code == 201
    assert api(superuser).delete(f"/api/v1/studios/{created.json()['id']}/").status_code == 204


def test_nodes_permission_matrix(api, role_users, studio_a, studio_b):
    node = Resource("nodes", make=lambda studio: factories.NodeFactory(), write=("patch", "", {"enabled": False}),
                    write_status={"anonymous": 401, "operator_a": 403, "viewer_a": 403, "operator_b": 403, "superuser": 200},
                    shared=True)
    assert_permission_matrix(node, role_users, studio_a)


def test_superusers_register_rename_and_remove_idle_nodes(api, operator_a, superuser, studio_a):
    body = {"name": "mcr-2", "capabilities": ["record", "playout"], "enabled": False}
    assert api(operator_a).post("/api/v1/nodes/", body, format="json").status_code == 403
    created = api(superuser).post("/api/v1/nodes/", body, format="json")
    assert created.status_code == 201, created.content
    assert {key: created.json()[key] for key in body} == body
    assert created.json()["online"] is False
    node = Node.objects.get(pk=created.json()["id"])
    assert api(superuser).post("/api/v1/nodes/", body, format="json").json()["error"]["fields"] == {
        "name": ["node with this name already exists."]}
    bad = api(superuser).post("/api/v1/nodes/", {**body, "name": "x", "capabilities": ["teleport"]}, format="json")
    assert (bad.status_code, list(bad.json()["error"]["fields"])) == (400, ["capabilities.0"])

    channel = factories.ChannelFactory(studio=studio_a, node=node)
    assert api(superuser).patch(f"/api/v1/nodes/{node.pk}/", {"name": "mcr-b"}, format="json").json()["name"] == "mcr-b"
    assert api(operator_a).delete(f"/api/v1/nodes/{node.pk}/").status_code == 403
    in_use = api(superuser).delete(f"/api/v1/nodes/{node.pk}/")
    assert (in_use.status_code, in_use.json()["error"]["code"]) == (409, "protected")  # a channel still runs there
    channel.delete()
    assert api(superuser).delete(f"/api/v1/nodes/{node.pk}/").status_code == 204
    assert not Node.objects.filter(pk=node.pk).exists()


def test_an_online_nodes_name_stays_and_it_is_not_removed(api, superuser):
    client = api(superuser)
    online = factories.NodeFactory(name="mcr-live", last_heartbeat_at=timezone.now())
    renamed = client.patch(f"/api/v1/nodes/{online.pk}/", {"name": "mcr-other"}, format="json")
    assert renamed.status_code == 409
    assert renamed.json()["error"] == {
        "code": "node_online", "params": {"node": "mcr-live"}, "fields": {},
        "message": "mcr-live is online and its agent finds it by name: stop the agent before renaming the node."}
    assert client.patch(f"/api/v1/nodes/{online.pk}/", {"enabled": False}, format="json").status_code == 200
    removed = client.delete(f"/api/v1/nodes/{online.pk}/")
    assert (removed.status_code, removed.json()["error"]["code"]) == (409, "node_online")
    online.refresh_from_db()
    assert (online.name, online.enabled) == ("mcr-live", False)

    Node.objects.filter(pk=online.pk).update(last_heartbeat_at=timezone.now() - timedelta(hours=1))  # agent stopped
    assert client.patch(f"/api/v1/nodes/{online.pk}/", {"name": "mcr-other"}, format="json").status_code == 200
    assert client.delete(f"/api/v1/nodes/{online.pk}/").status_code == 204


def test_alerts_permission_matrix(api, role_users, studio_a, studio_b):
    alert = Resource("alerts", make=lambda studio: Alert.objects.create(studio=studio, code="c", message="m"),
                     write=("post", "acknowledge/", {}))
    assert_permission_matrix(alert, role_users, studio_a)


def test_acknowledging_twice_is_a_conflict(api, operator_a, studio_a):
    alert = Alert.objects.create(studio=studio_a, code="c", message="m")
    assert api(operator_a).post(f"/api/v1/alerts/{alert.pk}/acknowledge/").json()["acknowledged_by"] == operator_a.pk
    again = api(operator_a).post(f"/api/v1/alerts/{alert.pk}/acknowledge/")
    assert again.status_code == 409
    assert again.json() == {"error": {"code": "alert_already_acknowledged", "message": "This alert was already acknowledged.",
                                      "params": {}, "fields": {}}}


def test_validation_error_lists_fields(api, operator_a, studio_a):
    response = api(operator_a).patch(f"/api/v1/studios/{studio_a.pk}/", {"time_zone": "Mars/Olympus", "name": ""}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"time_zone", "name"}


def test_a_single_field_error_gives_its_own_code(api, operator_a, studio_a):
    error = api(operator_a).patch(f"/api/v1/studios/{studio_a.pk}/", {"time_zone": "Mars/Olympus"}, format="json").json()["error"]
    assert error["code"] == "unknown_time_zone"
    assert error["message"] == "Mars/Olympus is not a known IANA time zone (e.g. Europe/London)."
    assert error["fields"] == {"time_zone": [error["message"]]}


@pytest.mark.parametrize("path", ["/api/v1/studios/999999/", "/api/v1/studios/not-a-number/", "/api/v1/nowhere/"])
def test_not_found_is_one_shape(api, operator_a, path):
    response = api(operator_a).get(path)
    assert response.status_code == 404
    if path.startswith("/api/v1/studios/"):
        assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "params": {}, "fields": {}}}


def test_messages_follow_accept_language(api, operator_a, studio_a):
    response = api(operator_a).get("/api/v1/studios/999999/", HTTP_ACCEPT_LANGUAGE="de")
    assert response.json()["error"]["message"] == "Nicht gefunden."
    response = api(None).get("/api/v1/studios/", HTTP_ACCEPT_LANGUAGE="fr")
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response.json()["error"]["message"] == "Informations d'authentification non fournies."


def test_field_messages_follow_each_requests_language(api, superuser):
    client = api(superuser)
    client.post("/api/v1/nodes/", {"name": "mcr-1"}, format="json")
    german = client.post("/api/v1/nodes/", {"name": "mcr-1"}, format="json", HTTP_ACCEPT_LANGUAGE="de")
    english = client.post("/api/v1/nodes/", {"name": "mcr-1"}, format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert german.json()["error"]["fields"]["name"] == ["node mit diesem Wert für das Feld Name existiert bereits."]
    assert english.json()["error"]["fields"]["name"] == ["node with this name already exists."]


def test_throttled_is_429_with_retry_after(api, api_rates, operator_a):
    api_rates(user="3/minute")
    client = api(operator_a)
    statuses = [client.get("/api/v1/studios/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/v1/studios/")
    error = response.json()["error"]
    assert error["code"] == "throttled"
    assert 0 < error["params"]["wait_seconds"] <= 60
    assert int(response["Retry-After"]) == error["params"]["wait_seconds"]


def test_password_guessing_is_throttled(api, api_rates, operator_a):
    api_rates(anon="2/minute")
    guesses = [api().post("/api/v1/auth/token/", {"username": "operator_a", "password": f"guess{n}"}, format="json")
               for n in range(3)]
    assert [guess.status_code for guess in guesses] == [400, 400, 429]


def test_pages_are_capped(api, superuser):
    factories.NodeFactory.create_batch(3)
    page = api(superuser).get("/api/v1/nodes/?page_size=2&ordering=-name").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    assert api(superuser).get("/api/v1/nodes/?page=99").json()["error"]["code"] == "not_found"


def test_node_online_follows_its_heartbeat(api, superuser):
    factories.NodeFactory(name="live", last_heartbeat_at=timezone.now())
    factories.NodeFactory(name="gone")
    nodes = {n["name"]: n["online"] for n in api(superuser).get("/api/v1/nodes/").json()["results"]}
    assert nodes == {"live": True, "gone": False}
    assert Node.objects.count() == 2


def test_schema_and_docs_are_served_without_a_cdn(api, db):
    schema = api().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/schedules/{id}/occurrences/" in schema.json()["paths"]
    docs = api().get("/api/docs/").content.decode()
    assert "swagger-ui" in docs and "//cdn" not in docs and "unpkg" not in docs
    assert token_client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200


@pytest.mark.parametrize("path", ["studios", "nodes", "alerts"])
def test_list_queries_do_not_grow_with_rows(api, operator_a, studio_a, path):
    def studio(_):
        StudioMembership.objects.create(studio=factories.StudioFactory(), user=operator_a)

    makers = {
        "studios": studio,
        "nodes": lambda _: factories.NodeFactory(),
        "alerts": lambda n: Alert.objects.create(studio=studio_a, code="c", message=f"m{n}"),
    }
    assert_list_queries_flat(api(operator_a), f"/api/v1/{path}/", lambda count: [makers[path](n) for n in range(count)])
