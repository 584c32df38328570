"""State changes of recorder schedules and their recordings, one module per concern.

- ``schedules``: what people do (cancel, start now, stop now) and a series' next window;
- ``recording``: what agents do (claim, record, take over, stop, finish);
- ``tick``: the tick's safety net for what agents did not do.
"""

from recorders.services.tick import housekeeping
from recorders.services.recording import (
    leases_renew,
    recording_directory,
    recording_finalize,
    recording_interrupted,
    recording_last_data_at,
    recording_source_back,
    recording_source_dead,
    recording_started,
    schedule_begin_stop,
    schedule_claim,
    schedule_fail,
    schedule_take_over,
)
from recorders.services.schedules import (
    schedule_announce,
    schedule_cancel,
    schedule_queue_next,
    schedule_start_now,
    schedule_stop_now,
)

__all__ = [
    "housekeeping", "leases_renew", "recording_directory", "recording_finalize", "recording_interrupted",
    "recording_last_data_at", "recording_source_back", "recording_source_dead", "recording_started", "schedule_announce", "schedule_begin_stop", "schedule_cancel",
    "schedule_claim", "schedule_fail", "schedule_queue_next", "schedule_start_now", "schedule_stop_now",
    "schedule_take_over",
]
