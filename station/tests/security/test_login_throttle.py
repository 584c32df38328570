"""Password guessing (issue 14): the admin login and the token endpoint share one failed-login count per username
and per address, kept where every web process sees it."""

import time

import pytest
from django.core.cache import caches
from django.core.cache.backends import locmem
from django.test import Client

from station.tests import factories
from station.tests.concurrency import run_together
from station.tests.factories import PASSWORD

MAX_FAILURES = 3
ATTACKER, OPERATOR_DESK = "203.0.113.7", "198.51.100.20"


@pytest.fixture
def limits(settings, api_rates):
    settings.LOGIN_MAX_FAILURES = settings.LOGIN_MAX_FAILURES_PER_ADDRESS = MAX_FAILURES
    settings.LOGIN_LOCKOUT_SECONDS = 900
    return settings


def admin_login(username: str, password: str, address: str = ATTACKER):
    client = Client(REMOTE_ADDR=address)
    response = client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"})
    return response, "_auth_user_id" in client.session


def token_login(username: str, password: str, address: str = ATTACKER):
    return Client(REMOTE_ADDR=address).post("/api/v1/auth/token/", {"username": username, "password": password},
                                            content_type="application/json")


def assert_locked_out_of_the_api(response):
    assert response.status_code == 429, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "login_locked"
    assert 0 < error["params"]["wait_seconds"] <= 900
    assert int(response["Retry-After"]) == error["params"]["wait_seconds"]


def assert_locked_out_of_the_admin(response, logged_in):
    assert response.status_code == 200 and not logged_in
    errors = response.context["form"].non_field_errors().as_data()
    assert [error.code for error in errors] == ["login_locked"]
    assert "wait" in str(errors[0].message).lower() or "try again" in str(errors[0].message).lower()


def test_the_admin_refuses_even_the_right_password_after_too_many_failures(limits, operator_a):
    for _attempt in range(MAX_FAILURES + 1):
        assert admin_login("operator_a", PASSWORD)[1]  # a success is no failure
    for _attempt in range(MAX_FAILURES):
        response, logged_in = admin_login("operator_a", "guess")
        assert not logged_in and response.context["form"].non_field_errors().as_data()[0].code == "invalid_login"
    assert_locked_out_of_the_admin(*admin_login("operator_a", PASSWORD))


def test_the_token_endpoint_refuses_even_the_right_password_after_too_many_failures(limits, operator_a):
    for _attempt in range(MAX_FAILURES + 1):
        assert token_login("operator_a", PASSWORD).status_code == 200  # a success is no failure
    for _attempt in range(MAX_FAILURES):
        assert token_login("operator_a", "guess").json()["error"]["code"] == "authorization"
    assert_locked_out_of_the_api(token_login("operator_a", PASSWORD))


def test_failures_in_the_admin_and_the_api_count_together(limits, operator_a):
    admin_login("operator_a", "guess")
    token_login("operator_a", "guess")
    admin_login("operator_a", "guess")
    assert_locked_out_of_the_api(token_login("operator_a", PASSWORD))
    assert_locked_out_of_the_admin(*admin_login("operator_a", PASSWORD))


def test_guessing_many_usernames_from_one_address_locks_the_address(limits, operator_a, operator_b):
    for username in ("admin", "root", "operator_b"):
        token_login(username, "guess")
    assert_locked_out_of_the_api(token_login("operator_a", PASSWORD))
    assert token_login("operator_a", PASSWORD, address=OPERATOR_DESK).status_code == 200  # the user, elsewhere


def test_guessing_one_username_from_many_addresses_locks_the_username(limits, operator_a):
    for n in range(MAX_FAILURES):
        token_login("operator_a", "guess", address=f"192.0.2.{n + 1}")
    assert_locked_out_of_the_api(token_login("operator_a", PASSWORD, address=OPERATOR_DESK))


def test_a_success_elsewhere_does_not_reset_the_attackers_count(limits, operator_a, operator_b):
    for _attempt in range(MAX_FAILURES - 1):
        token_login("operator_b", "guess")
    assert token_login("operator_a", PASSWORD, address=OPERATOR_DESK).status_code == 200
    assert admin_login("operator_b", PASSWORD, address=OPERATOR_DESK)[1]
    token_login("operator_b", "guess")
    assert_locked_out_of_the_api(token_login("operator_b", PASSWORD))


def test_another_web_process_sees_the_same_count(limits, operator_a):
    for _attempt in range(MAX_FAILURES):
        token_login("operator_a", "guess")
    # Another process has cache connections of its own and none of this one's memory.
    del caches["login"]
    for memory in (locmem._caches, locmem._expire_info, locmem._locks):
        memory.clear()
    assert_locked_out_of_the_admin(*admin_login("operator_a", PASSWORD))
    assert_locked_out_of_the_api(token_login("operator_a", PASSWORD))


def test_the_count_is_forgotten_after_the_lockout(limits, operator_a):
    limits.LOGIN_LOCKOUT_SECONDS = 3
    for _attempt in range(MAX_FAILURES):
        token_login("operator_a", "guess")
    assert token_login("operator_a", PASSWORD).status_code == 429
    time.sleep(3.5)
    assert token_login("operator_a", PASSWORD).status_code == 200


def test_parallel_guesses_check_no_more_passwords_than_the_limit(limits, transactional_db):
    factories.UserFactory(username="target")
    statuses = run_together(12, lambda: token_login("target", "guess").status_code)
    assert sorted(statuses) == [400] * MAX_FAILURES + [429] * (12 - MAX_FAILURES)


def test_a_desk_sharing_one_address_is_not_locked_out_by_a_few_peoples_typos(settings, api_rates, studio_a):
    settings.LOGIN_MAX_FAILURES, settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 3, 9
    staff = [factories.member_of(studio_a, username=f"desk{n}") for n in range(4)]
    for person in staff[:3]:
        for _typo in range(2):
            assert token_login(person.username, "typo", OPERATOR_DESK).status_code == 400

    assert token_login(staff[3].username, PASSWORD, OPERATOR_DESK).status_code == 200
