from django.apps import apps
from django.test.utils import isolate_apps

from station.models import StatusQuerySet, StudioScopedModel, StudioScopedQuerySet
from station.transitions import StatusMachine

SCOPED_MODELS = [model for model in apps.get_models() if issubclass(model, StudioScopedModel)]


def test_every_studio_row_is_listed_through_its_studio_scope():
    assert {model.__name__ for model in SCOPED_MODELS} >= {"Studio", "Alert", "Recorder", "RecorderSchedule",
                                                           "Channel", "ShowInstance", "MediaAsset", "WebhookDelivery"}
    for model in SCOPED_MODELS:
        assert isinstance(model.objects.all(), StudioScopedQuerySet), model
        assert model._default_manager.model is model
        assert model.check() == [], model


def test_a_studio_status_machine_moves_through_its_transitions_table():
    machines = [model for model in SCOPED_MODELS if issubclass(model, StatusMachine)]
    assert len(machines) >= 9
    for model in machines:
        assert isinstance(model.objects.all(), StatusQuerySet), model


@isolate_apps("station")
def test_a_studio_row_that_does_not_name_its_path_to_the_studio_fails_the_system_checks():
    class Orphan(StudioScopedModel):
        class Meta:
            app_label = "station"

    class Named(StudioScopedModel):
        studio_lookup = "owner__studio"

        class Meta:
            app_label = "station"

    assert [error.id for error in Orphan.check()] == ["station.E001"]
    assert Named.check() == []
