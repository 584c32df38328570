"""Every state machine moves only along its transitions table, once, and only through ``move_to``."""

import ast
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings

from ingest.models import Download, IngestSource, MediaAsset, Publication
from playout.models import Channel, Episode, Podcast, ShowRecording
from recorders.models import RecorderSchedule, RecordingSession
from station.errors import TransitionNotAllowed
from station.models import Webhook, WebhookDelivery
from station.tests import factories
from station.tests.concurrency import run_together
from station.transitions import StatusMachine

STATE_MACHINES = [model for model in apps.get_models() if issubclass(model, StatusMachine)]


def test_these_are_the_state_machines_and_each_table_names_every_status():
    assert {model.__name__ for model in STATE_MACHINES} == {
        "RecorderSchedule", "RecordingSession", "Channel", "MediaAsset", "Download", "Publication", "WebhookDelivery",
        "ShowRecording", "Episode"}
    for model in STATE_MACHINES:
        statuses = set(model.Status.values)
        assert set(model.TRANSITIONS) == statuses, model
        assert all(targets <= statuses for targets in model.TRANSITIONS.values()), model


def _row(model, status):
    """A row of ``model`` in ``status``, written around move_to as a fixture (the database allows any status)."""
    if model is RecorderSchedule:
        row = factories.ScheduleFactory()
    elif model is RecordingSession:
        schedule = factories.ScheduleFactory()
        row = RecordingSession.objects.create(schedule=schedule, recorder=schedule.recorder)
    elif model is Channel:
        row = factories.ChannelFactory()
    elif model is MediaAsset:
        row = factories.MediaAssetFactory()
    elif model is Download:
        source = IngestSource.objects.create(studio=factories.StudioFactory(), name="Feed", url="https://example.org/feed.xml")
        row = Download.objects.create(source=source, item_key="item", url="https://example.org/item.mp3")
    elif model is Publication:
        row = Publication.objects.create(asset=factories.MediaAssetFactory())
    elif model is WebhookDelivery:
        hook = Webhook.objects.create(studio=factories.StudioFactory(), url="https://example.org/hook", event_types=["test"])
        row = WebhookDelivery.objects.create(webhook=hook, event_type="test", payload={})
    elif model is ShowRecording:
        show = factories.ShowFactory()
        row = ShowRecording.objects.create(show=show, channel=show.channel, slot_start=show.start_at, slot_end=show.end_at)
    elif model is Episode:
        row = Episode.objects.create(podcast=Podcast.objects.create(show=factories.ShowFactory()), title="Episode")
    else:  # a new state machine: give it a row here
        raise AssertionError(f"no fixture row for {model.__name__}")
    model.objects.filter(pk=row.pk).update(status=status)
    return model.objects.get(pk=row.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("model", STATE_MACHINES, ids=lambda model: model.__name__)
def test_each_status_reaches_exactly_the_targets_its_table_allows(model):
    for source in model.Status.values:
        row = _row(model, source)
        for target in model.Status.values:
            allowed = target in model.TRANSITIONS[source]
            moved = model.objects.filter(pk=row.pk).move_to(target)
            assert moved == allowed, f"{model.__name__}: {source} → {target}"
            if moved:
                model.objects.filter(pk=row.pk).update(status=source)  # back, for the next target


@pytest.mark.django_db
def test_a_refused_move_says_what_the_row_is_and_changes_nothing():
    schedule = _row(RecorderSchedule, RecorderSchedule.Status.COMPLETED)

    with pytest.raises(TransitionNotAllowed) as refused:
        schedule.move_to(RecorderSchedule.Status.RUNNING, error_message="changed")

    assert refused.value.code == "transition_not_allowed" and "Completed" in str(refused.value)
    assert RecorderSchedule.objects.get(pk=schedule.pk).error_message == ""


@pytest.mark.django_db
def test_a_guard_is_part_of_the_compare_and_set():
    schedule = _row(RecorderSchedule, RecorderSchedule.Status.RUNNING)
    RecorderSchedule.objects.filter(pk=schedule.pk).update(claimed_by="agent-1")

    with pytest.raises(TransitionNotAllowed):
        schedule.move_to(RecorderSchedule.Status.STOPPING, where={"claimed_by": "agent-2"})
    schedule.move_to(RecorderSchedule.Status.STOPPING, where={"claimed_by": "agent-1"})

    assert RecorderSchedule.objects.get(pk=schedule.pk).status == RecorderSchedule.Status.STOPPING


def _first_move(model) -> tuple[str, str]:
    """A transition to a status that can't be entered again from itself (so a second writer finds it moved on).

    Re-entering a status (a claim taken back after its lease ran out) is made once by its guard, as above.
    """
    return next((source, target) for source, targets in model.TRANSITIONS.items() for target in sorted(targets)
                if target not in model.TRANSITIONS[target])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("model", STATE_MACHINES, ids=lambda model: model.__name__)
def test_two_writers_racing_for_one_move_make_it_once(model):
    source, target = _first_move(model)
    row = _row(model, source)

    def writer():
        try:
            model.objects.get(pk=row.pk).move_to(target)
            return "moved"
        except TransitionNotAllowed:
            return "refused"

    outcomes = run_together(2, writer)

    assert sorted(outcomes) == ["moved", "refused"], (source, target, outcomes)
    assert model.objects.get(pk=row.pk).status == target


def _status_writes_around_move_to(path: Path) -> list[str]:
    """``….update(status=…)``, ``update_or_create(defaults={"status": …})`` and ``save(update_fields=[…"status"…])``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        keywords = {keyword.arg: keyword.value for keyword in node.keywords}
        method = node.func.attr
        if method == "update" and "status" in keywords:
            found.append(f"{path}:{node.lineno} update(status=…)")
        elif method == "update_or_create" and isinstance(keywords.get("defaults"), ast.Dict) and any(
                isinstance(key, ast.Constant) and key.value == "status" for key in keywords["defaults"].keys):
            found.append(f"{path}:{node.lineno} update_or_create(defaults={{'status': …}})")
        elif method == "save" and "status" in ast.unparse(keywords.get("update_fields", ast.Constant(None))):
            found.append(f"{path}:{node.lineno} save(update_fields=[…'status'…])")
    return found


def test_no_code_writes_a_status_around_move_to():
    root = Path(settings.BASE_DIR)
    modules = [path for app in ("station", "recorders", "playout", "ingest") for path in (root / app).rglob("*.py")
               if "tests" not in path.parts and "migrations" not in path.parts]

    writes = [write for path in modules for write in _status_writes_around_move_to(path)]

    assert writes == []
