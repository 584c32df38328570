"""As-run exports for compliance."""

import csv
from collections.abc import Iterable

from playout.models import AsRunEntry

AS_RUN_COLUMNS = ["channel", "started_at_utc", "ended_at_utc", "duration_seconds", "title", "result", "asset_id",
                  "asset_checksum", "scheduled_item_id", "node"]


def write_as_run_csv(entries: Iterable[AsRunEntry], out) -> None:
    """Write as-run rows as CSV, times in UTC ISO 8601, oldest first as given."""
    writer = csv.writer(out)
    writer.writerow(AS_RUN_COLUMNS)
    for entry in entries:
        writer.writerow([
            entry.channel.slug,
            entry.started_at.isoformat(),
            entry.ended_at.isoformat() if entry.ended_at else "",
            f"{entry.duration_seconds:.3f}" if entry.duration_seconds is not None else "",
            entry.title,
            entry.result,
            entry.asset_id or "",
            entry.asset.checksum if entry.asset_id else "",
            entry.scheduled_item_id or "",
            entry.node.name if entry.node_id else "",
        ])
