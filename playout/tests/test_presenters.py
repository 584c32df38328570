"""Presenters' credentials: who may connect to a channel's live input, when, and how they are issued and revoked."""

import json
import re
from datetime import timedelta

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from playout.agent.live import MAX_BODY_BYTES, LiveDoor
from playout.models import LiveCredential, ShowInstance
from playout.presenters import (live_credential_issue, live_credential_new_password, live_credential_revoke,
                                live_source_admit, secret_hash)
from station.errors import UserError
from station.tests import factories
from station.tests.api_support import Resource, assert_permission_matrix

pytestmark = pytest.mark.django_db
MARGIN = timedelta(minutes=15)


@pytest.fixture
def slot():
    """A show on a channel, with one slot from an hour from now, for an hour."""
    start = timezone.now().replace(microsecond=0) + timedelta(hours=1)
    show = factories.ShowFactory(name="Morning Live", start_at=start, end_at=start + timedelta(hours=1),
                                 live_margin_seconds=int(MARGIN.total_seconds()))
    return ShowInstance.objects.create(show=show, channel=show.channel, start_at=show.start_at, end_at=show.end_at)


def _admit(instance, password, *, at, username="source", channel=None):
    return live_source_admit(channel_id=(channel or instance.channel).pk, username=username, password=password, now=at)


def test_a_presenter_is_let_in_from_the_margin_before_the_slot_to_the_margin_after_for_that_slot(slot):
    credential, password = live_credential_issue(show=slot.show, presenter="Ada")
    for moment in (slot.start_at - MARGIN, slot.start_at, slot.end_at - timedelta(seconds=1), slot.end_at + MARGIN - timedelta(seconds=1)):
        grant = _admit(slot, password, at=moment)
        assert (grant.credential_id, grant.presenter) == (credential.pk, "Ada")
        assert (grant.on_air_from, grant.on_air_until, grant.connected_until) == (slot.start_at, slot.end_at, slot.end_at + MARGIN)
    for moment in (slot.start_at - MARGIN - timedelta(seconds=1), slot.end_at + MARGIN):
        with pytest.raises(UserError) as refused:
            _admit(slot, password, at=moment)
        assert refused.value.code == "live_outside_slot"
        assert "Morning Live is not on within 15 minutes" in str(refused.value)


def test_between_two_close_slots_the_next_one_is_granted(slot):
    following = ShowInstance.objects.create(show=slot.show, channel=slot.channel, start_at=slot.end_at + timedelta(minutes=10),
                                            end_at=slot.end_at + timedelta(minutes=70))
    _, password = live_credential_issue(show=slot.show, presenter="Ada")
    assert _admit(slot, password, at=slot.end_at + timedelta(minutes=5)).on_air_from == following.start_at
    assert _admit(slot, password, at=slot.end_at - timedelta(minutes=5)).on_air_from == slot.start_at


@pytest.mark.parametrize("attempt,code", [
    ({"password": "not-it"}, "live_credentials_wrong"),
    ({"username": "ada"}, "live_credentials_wrong"),  # issued as "source"
    ({"password": ""}, "live_credentials_wrong"),
    ({"other_channel": True}, "live_credentials_wrong"),  # another channel's input: its shows' credentials only
])
def test_wrong_credentials_are_refused_alike(slot, attempt, code):
    _, password = live_credential_issue(show=slot.show, presenter="Ada")
    channel = factories.ChannelFactory(studio=slot.channel.studio) if attempt.get("other_channel") else None
    with pytest.raises(UserError) as refused:
        _admit(slot, attempt.get("password", password), username=attempt.get("username", "source"), at=slot.start_at,
               channel=channel)
    assert refused.value.code == code
    assert str(refused.value) == "Wrong user name or password for this channel's live input."


def test_a_revoked_credential_and_a_disabled_show_are_refused_and_a_new_password_replaces_the_old(slot):
    credential, password = live_credential_issue(show=slot.show, presenter="Ada")
    new_password = live_credential_new_password(credential=credential)
    with pytest.raises(UserError):
        _admit(slot, password, at=slot.start_at)
    assert _admit(slot, new_password, at=slot.start_at).credential_id == credential.pk

    slot.show.enabled = False
    slot.show.save(update_fields=["enabled"])
    with pytest.raises(UserError) as refused:
        _admit(slot, new_password, at=slot.start_at)
    assert refused.value.code == "live_show_disabled"

    slot.show.enabled = True
    slot.show.save(update_fields=["enabled"])
    live_credential_revoke(credential=credential, now=timezone.now())
    with pytest.raises(UserError) as refused:
        _admit(slot, new_password, at=slot.start_at)
    assert refused.value.code == "live_credential_revoked"


def test_only_a_hash_of_the_password_is_kept_and_user_names_are_one_per_presenter_of_a_show(slot):
    credential, password = live_credential_issue(show=slot.show, presenter="Ada", username="ada")
    assert len(password) >= 24 and credential.secret_hash == secret_hash(password) != password
    assert not LiveCredential.objects.filter(secret_hash=password).exists()
    with pytest.raises(Exception) as taken:
        live_credential_issue(show=slot.show, presenter="Bob", username="ada")
    assert "already has this user name" in str(taken.value)
    live_credential_revoke(credential=credential, now=timezone.now())
    live_credential_issue(show=slot.show, presenter="Ada again", username="ada")  # a revoked one frees its name


def test_a_channels_live_input_port_is_its_own_and_no_harbor_outputs(db, settings):
    settings.PLAYOUT_HARBOR_PORTS = "8100-8999"
    listeners = factories.ChannelFactory(output_settings={"port": 8200})
    channel = factories.ChannelFactory(output_settings={"port": 8300}, live_input_port=8200)
    with pytest.raises(Exception) as taken:
        channel.full_clean()
    assert "A harbor output streams to listeners on this port" in str(taken.value)
    channel.live_input_port = 8300
    with pytest.raises(Exception):
        channel.full_clean()  # its own harbor's port
    channel.live_input_port = 80
    with pytest.raises(Exception) as outside:
        channel.full_clean()
    assert "from 8100 to 8999" in str(outside.value)
    channel.live_input_port = 8400
    channel.full_clean()
    channel.save()
    listeners.live_input_port = 8400
    with pytest.raises(Exception) as twice:
        listeners.full_clean()
    assert "Another channel already takes live sources on this port." in str(twice.value)


# -- the API and the admin ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("resource", [
    Resource("live-credentials", make=lambda studio: live_credential_issue(
        show=factories.ShowFactory(channel__studio=studio), presenter="Ada")[0], write=("patch", "", {"presenter": "Bo"})),
    Resource("live-credentials", make=lambda studio: live_credential_issue(
        show=factories.ShowFactory(channel__studio=studio), presenter="Ada")[0], write=("post", "revoke/", {})),
], ids=lambda resource: f"{resource.path}-{resource.write[0]}")
def test_permission_matrix(api, role_users, studio_a, studio_b, resource):
    assert_permission_matrix(resource, role_users, studio_a)


def test_the_api_shows_a_password_once_when_issued_and_revokes(api, operator_a, studio_a, slot):
    show = factories.ShowFactory(channel__studio=studio_a)
    client = api(operator_a)
    issued = client.post("/api/v1/live-credentials/", {"show": show.pk, "presenter": "Ada"}, format="json")
    assert issued.status_code == 201, issued.content
    password = issued.json()["password"]
    assert issued.json()["username"] == "source" and len(password) >= 24
    credential = LiveCredential.objects.get(pk=issued.json()["id"])
    assert credential.secret_hash == secret_hash(password)
    assert client.get(f"/api/v1/live-credentials/{credential.pk}/").json()["password"] is None

    renewed = client.post(f"/api/v1/live-credentials/{credential.pk}/new-password/").json()["password"]
    assert renewed and renewed != password
    revoked = client.post(f"/api/v1/live-credentials/{credential.pk}/revoke/")
    assert revoked.json()["revoked_at"] is not None
    assert client.delete(f"/api/v1/live-credentials/{credential.pk}/").status_code == 405  # the as-run log names them

    other_studio_show = slot.show  # of a studio operator_a is no member of
    refused = client.post("/api/v1/live-credentials/", {"show": other_studio_show.pk, "presenter": "Eve"}, format="json")
    assert refused.status_code == 400 and "show" in refused.json()["error"]["fields"]
    moved = client.patch(f"/api/v1/live-credentials/{credential.pk}/", {"username": "ada"}, format="json")
    assert moved.status_code == 400 and moved.json()["error"]["code"] == "live_credential_fixed"


def test_the_admin_issues_a_credential_and_shows_its_password_once(client, superuser, slot):
    client.force_login(superuser)
    response = client.post(reverse("admin:playout_livecredential_add"),
                           {"show": slot.show.pk, "presenter": "Ada", "username": "source"}, follow=True)
    credential = LiveCredential.objects.get()
    page = response.content.decode()
    shown = page.split("password ")[1].split(".")[0]
    assert credential.secret_hash == secret_hash(shown)
    assert "This password is shown only now" in page
    assert shown not in client.get(reverse("admin:playout_livecredential_change", args=[credential.pk])).content.decode()

    client.post(reverse("admin:playout_livecredential_changelist"),
                {"action": "revoke", "_selected_action": [credential.pk]}, follow=True)
    assert LiveCredential.objects.get().revoked_at is not None


@pytest.mark.django_db(transaction=True)  # the door answers on threads of its own, with their own connections
def test_the_agents_door_answers_the_engine_with_numbers_and_refuses_anything_else(slot):
    _, password = live_credential_issue(show=slot.show, presenter="Ada")
    door = LiveDoor()
    try:
        url = door.url_for(slot.channel_id)

        def ask(login, path=None, **options):
            return requests.post(path or url, data=json.dumps(login) if isinstance(login, list) else login,
                                 timeout=5, **options)

        refused = ask([["user", "source"], ["password", password], ["address", "203.0.113.9"]])
        assert (refused.status_code, refused.text) == (403, "live_outside_slot")  # an hour before its slot
        ShowInstance.objects.filter(pk=slot.pk).update(start_at=timezone.now() - timedelta(minutes=1))
        granted = ask([["user", "source"], ["password", password], ["address", "203.0.113.9"]])
        assert granted.status_code == 200
        assert re.fullmatch(r"\d+ \d+\.\d{3} \d+\.\d{3} \d+\.\d{3}", granted.text)  # the engine parses numbers only
        for attack in ([["user", "source"], ["password", "' OR 1=1 --"], ["address", "x"]],
                       [["user", "source\nSK_LIVE [\"lost\",\"1\"]"], ["password", password], ["address", "x"]],
                       [["user", "source"], ["password", password + "\u0000"], ["address", "x"]]):
            assert ask(attack).status_code == 403
        assert ask("not json").status_code == 400
        assert ask([["user", "source"]]).status_code == 400
        assert ask("x" * (MAX_BODY_BYTES + 1)).status_code == 404
        assert ask([["user", "source"], ["password", password], ["address", "x"]],
                   path=door.base_url + f"/live/{slot.channel_id}/x").status_code == 404
        assert requests.get(url, timeout=5).status_code == 405
    finally:
        door.close()
