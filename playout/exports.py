"""As-run exports for compliance."""

import csv
from collections.abc import Iterable

from playout.models import AsRunEntry

# A spreadsheet runs a cell starting with one of these as a formula (=HYPERLINK(…), +cmd|…, @SUM…):
# OWASP's CSV injection guidance is to make such a cell text with a leading apostrophe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

AS_RUN_COLUMNS = ["channel", "started_at_utc", "ended_at_utc", "duration_seconds", "title", "result", "asset_id",
                  "asset_checksum", "scheduled_item_id", "node", "presenter"]  # new columns go last: readers index them


def spreadsheet_text(value: str) -> str:
    """Text a spreadsheet shows as it is: a value starting like a formula gets a leading apostrophe."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def write_as_run_csv(entries: Iterable[AsRunEntry], out) -> None:
    """Write as-run rows as CSV, times in UTC ISO 8601, oldest first as given; text can't run as a formula.

    Titles come from feeds, uploads and operators, slugs, node and presenter names from operators: every text
    column goes through ``spreadsheet_text``; times and numbers are ours and stay as they are.
    """
    writer = csv.writer(out)
    writer.writerow(AS_RUN_COLUMNS)
    for entry in entries:
        writer.writerow([
            spreadsheet_text(entry.channel.slug),
            entry.started_at.isoformat(),
            entry.ended_at.isoformat() if entry.ended_at else "",
            f"{entry.duration_seconds:.3f}" if entry.duration_seconds is not None else "",
            spreadsheet_text(entry.title),
            spreadsheet_text(entry.result),
            entry.asset_id or "",
            spreadsheet_text(entry.asset.checksum) if entry.asset_id else "",
            entry.scheduled_item_id or "",
            spreadsheet_text(entry.node.name) if entry.node_id else "",
            spreadsheet_text(entry.presenter),
        ])
