"""Schemathesis fuzzes every operation of /api/schema/ against a live server: no 5xx, no response off the schema."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ingest.models import Download, IngestSource
from playout.models import AsRunEntry, PlaylistItem
from station.models import Alert
from station.tests import factories

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
EXAMPLES_PER_OPERATION = int(os.environ.get("API_FUZZ_EXAMPLES", "10"))  # more for a deeper run


@pytest.fixture
def station_rows(transactional_db, studio_a, superuser):
    """A row of every kind (low ids, so generated ids sometimes hit real rows)."""
    channel = factories.ChannelFactory(studio=studio_a)
    asset = factories.MediaAssetFactory(studio=studio_a)
    playlist = factories.PlaylistFactory(studio=studio_a)
    PlaylistItem.objects.create(playlist=playlist, asset=asset)
    factories.ShowFactory(channel=channel, playlist=playlist)
    factories.ScheduleFactory(recorder__studio=studio_a)
    factories.NodeFactory()
    AsRunEntry.objects.create(channel=channel, title="On air", started_at=asset.created_at)
    Alert.objects.create(studio=studio_a, code="c", message="m")
    source = IngestSource.objects.create(studio=studio_a, name="Feed", kind="url_list", url_list="https://example.org/a.mp3")
    Download.objects.create(source=source, item_key="a", url="https://example.org/a.mp3", status="failed")
    return superuser


@pytest.mark.slow
def test_every_operation_answers_within_its_schema(live_server, station_rows, api_rates, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    token = Token.objects.create(user=station_rows).key
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # Schemathesis' own pytest loader doesn't run under pytest 9, so each operation gets a Hypothesis test here.
            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def answers_within_schema(case):
                case.call_and_validate(base_url=live_server.url, headers={"Authorization": f"Token {token}"}, checks=CHECKS)

            try:
                answers_within_schema()
            except (AssertionError, BaseExceptionGroup) as failure:  # every operation's failures, reported together
                failures.append(f"{operation.label} ({mode.value}): {failure}")
    assert operations >= 70
    assert not failures, "\n\n".join(failures)
