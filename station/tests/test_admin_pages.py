import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from station.models import Node
from station.tests import factories

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)


def _seed(studio):
    schedule = factories.ScheduleFactory(recorder__studio=studio)
    instance = factories.ShowInstanceFactory(show__channel__studio=studio)
    factories.MediaAssetFactory(studio=studio)
    return schedule, instance


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
@pytest.mark.parametrize("who", ["superuser", "operator_a"])
def test_every_admin_list_add_and_change_page_renders(client, model, who, request, studio_a):
    user = request.getfixturevalue(who)
    _seed(studio_a)
    client.force_login(user)
    opts = model._meta
    listing = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    assert listing.status_code in (200, 403)
    assert client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add")).status_code in (200, 403)
    if listing.status_code == 403:
        return
    first = admin.site._registry[model].get_queryset(_request_for(user)).first()
    if first is not None:
        response = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk]))
        assert response.status_code == 200


def _request_for(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def test_an_online_node_is_neither_renamed_nor_deleted_in_the_admin(client, superuser):
    node = factories.NodeFactory(name="mcr-live", last_heartbeat_at=timezone.now())
    client.force_login(superuser)
    assert client.get(reverse("admin:station_node_delete", args=[node.pk])).status_code == 403
    form = {"name": "mcr-other", "hostname": "", "capabilities": '["record"]', "enabled": "on"}
    response = client.post(reverse("admin:station_node_change", args=[node.pk]), form)
    assert response.status_code == 200
    assert "stop the agent before renaming the node" in response.content.decode()
    assert Node.objects.get(pk=node.pk).name == "mcr-live"
