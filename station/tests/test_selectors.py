"""Who may follow a studio's dashboard, decided for a desk of askers at once."""

from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token

from station.selectors import DashboardAccess, DashboardAsker, dashboard_access
from station.tests.factories import member_of

GRANTED, NOT_AUTHENTICATED, NOT_A_MEMBER = DashboardAccess.GRANTED, DashboardAccess.NOT_AUTHENTICATED, DashboardAccess.NOT_A_MEMBER


def test_a_desk_asking_together_gets_each_askers_own_answer_from_four_queries(
        django_assert_max_num_queries, studio_a, studio_b, operator_a, superuser):
    operator_b = member_of(studio_b, username="operator_b")
    inactive = member_of(studio_a, username="left")
    inactive.is_active = False
    inactive.save()
    token = {user.username: Token.objects.create(user=user).key for user in (operator_a, operator_b, inactive, superuser)}
    askers_and_answers = [
        (DashboardAsker(operator_a), GRANTED),
        (DashboardAsker(operator_b), NOT_A_MEMBER),
        (DashboardAsker(superuser), GRANTED),
        (DashboardAsker(AnonymousUser()), NOT_AUTHENTICATED),
        (DashboardAsker(None), NOT_AUTHENTICATED),
        (DashboardAsker(AnonymousUser(), token["operator_a"]), GRANTED),
        (DashboardAsker(AnonymousUser(), token["operator_b"]), NOT_A_MEMBER),
        (DashboardAsker(AnonymousUser(), token["left"]), NOT_AUTHENTICATED),  # an inactive user's token
        (DashboardAsker(AnonymousUser(), token["root"]), GRANTED),
        (DashboardAsker(AnonymousUser(), "not-a-token"), NOT_AUTHENTICATED),
        (DashboardAsker(operator_b, token["operator_a"]), GRANTED),  # the token's user asks, not the session's
        (DashboardAsker(operator_a, "not-a-token"), NOT_AUTHENTICATED),
        (DashboardAsker(operator_a), GRANTED),  # twice in one desk
    ]
    with django_assert_max_num_queries(4):  # tokens, session users as they are now, their memberships, the studio
        answers = dashboard_access(studio_id=studio_a.pk, askers=[asker for asker, _ in askers_and_answers])
    assert answers == [answer for _, answer in askers_and_answers]


def test_no_studio_is_granted_to_anyone_not_even_a_superuser(studio_a, operator_a, superuser):
    missing = studio_a.pk + 1000
    root_token = Token.objects.create(user=superuser).key
    assert dashboard_access(studio_id=missing, askers=[
        DashboardAsker(superuser), DashboardAsker(operator_a), DashboardAsker(AnonymousUser(), root_token),
    ]) == [NOT_A_MEMBER] * 3
