"""What ingest tells other apps, which own what they do about it."""

from django.dispatch import Signal

# A download fetched new media for an item whose asset it had: ``old_id`` gives way to ``new``.
# Sent inside the download's transaction with ``now``; playout puts ``new`` in its upcoming shows.
asset_replaced = Signal()
