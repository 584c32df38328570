"""Media for the coming hours must be on this node before air (the cacher's check; fetching comes later).

Media lives under MEDIA_ROOT (shared between hosts, or local to one). An item
whose file is missing or has the wrong size raises an alert well before its
slot, once per item (a checksum would stall the agent's loop on big files: it is
verified where the file is made, on ingest); the dispatcher leaves such an item out, so the
filler covers its time instead of the engine failing on it.
"""

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _

from playout.models import ScheduledItem
from station.models import Alert
from station.services import alert_raise

HORIZON = timedelta(hours=6)  # how far ahead a missing file is reported


def unplayable_items(items: list[ScheduledItem]) -> set[int]:
    """Ids of the items whose media is absent or damaged on this node, nearest start first; alert for each."""
    unplayable = set()
    for item in sorted(items, key=lambda i: i.start_at):
        if not item.asset_id:
            continue
        problem = _problem(item)
        if problem:
            unplayable.add(item.pk)
            alert_raise(
                studio=item.channel.studio_id, code="media_missing", subject=item.title, severity=Alert.Severity.CRITICAL,
                message=_("%(title)s, on air at %(start)s on %(channel)s, cannot be played: %(problem)s. The filler will cover it.")
                % {"title": item.title, "start": item.start_at.isoformat(), "channel": item.channel, "problem": problem},
            )
    return unplayable


def _problem(item: ScheduledItem) -> str:
    if not item.asset.file:
        return _("the media has no file")
    path = Path(settings.MEDIA_ROOT) / item.asset.file.name
    try:
        size = path.stat().st_size
    except OSError:
        return _("its file %(file)s is not on this node") % {"file": item.asset.file.name}
    if item.asset.size_bytes and size != item.asset.size_bytes:
        return _("its file %(file)s is %(size)s bytes, not %(expected)s") % {
            "file": item.asset.file.name, "size": size, "expected": item.asset.size_bytes}
    return ""
