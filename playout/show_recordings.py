"""Shows recorded from the air: each instance of a show marked ``record_air``, from its channel's own output.

The channel's agent claims an instance's recording once (a row per instance), arms one of its engine's air
recorders with the slot's frames (playout.agent.air_records), and when the engine has closed the file, makes it an
asset: the file work (probing, hashing) outside any transaction, then one compare-and-set. The file holds the frames
from the first at or after the slot's start to the first at or after its end; ``started_at`` is its first sample's
instant on the output's timeline.
"""

from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ingest.models import MediaAsset
from ingest.services import asset_register_file
from playout import podcasts, services
from playout.models import Channel, ShowInstance, ShowRecording
from station import fencing
from station.errors import UserError
from station.services import alert_raise

ARM_AHEAD = timedelta(seconds=10)  # a slot's recorder is armed this long before it starts
# A recording whose file was not made an asset this long after its slot has failed (its engine, or its node, died):
# room for an agent to probe and hash hours of audio.
FINISH_GRACE = timedelta(minutes=5)


def show_recordings_due(*, channel_ids: list[int], now: datetime) -> list[ShowInstance]:
    """Instances of shows recorded from the air, on these channels, starting within ARM_AHEAD or on now, whose
    recording nobody has begun."""
    return list(ShowInstance.objects.filter(
        channel_id__in=channel_ids, cancelled=False, show__record_air=True, show__enabled=True,
        start_at__lte=now + ARM_AHEAD, end_at__gt=now, recording__isnull=True,
    ).select_related("show", "channel").order_by("start_at"))


def show_recordings_root() -> Path:
    """The directory the engines write shows' recordings in (under MEDIA_ROOT: the node shares the library)."""
    path = Path(settings.MEDIA_ROOT) / "shows"
    path.mkdir(parents=True, exist_ok=True)
    return path


def show_recording_path(instance: ShowInstance) -> Path:
    """Where the engine writes the instance's recording, named by the station (digits, letters and dashes)."""
    return (show_recordings_root() / f"studio-{instance.channel.studio_id}" / f"show-{instance.show_id}"
            / f"{instance.start_at:%Y%m%dT%H%M%SZ}-{instance.pk}.wav")


def show_recording_begin(*, instance: ShowInstance, node, epoch: int) -> ShowRecording | None:
    """The instance's recording, begun by this node's agent; None if another began it (once per instance)."""
    try:
        with transaction.atomic():
            fencing.hold(Channel, pk=instance.channel_id, epoch=epoch)
            recording = ShowRecording.objects.create(show=instance.show, instance=instance, channel=instance.channel,
                                                     slot_start=instance.start_at, slot_end=instance.end_at, node=node)
            services.channel_announce(instance.channel)
            return recording
    except IntegrityError:  # its one-to-one instance: another agent began it
        return None


def show_recording_finish(*, recording: ShowRecording, path: Path, started_at: datetime,
                          ended_at: datetime) -> ShowRecording:
    """The engine closed the recording's file: it becomes a ready asset, named after the show and its slot."""
    local = timezone.localtime(recording.slot_start, recording.channel.studio.zone)
    try:
        asset = asset_register_file(studio=recording.channel.studio, path=path, origin=MediaAsset.Origin.RECORDING,
                                    title=f"{recording.show.name} {local:%Y-%m-%d %H:%M}")
    except UserError as error:
        return show_recording_fail(recording=recording, reason=str(error))
    with transaction.atomic():
        recording.move_to(ShowRecording.Status.COMPLETED, asset=asset, started_at=started_at, ended_at=ended_at)
        services.channel_announce(recording.channel)
        podcasts.episode_queue(recording=recording)
    return recording


@transaction.atomic
def show_recording_fail(*, recording: ShowRecording, reason: str) -> ShowRecording:
    """The recording failed, once (a second caller, another agent's sweep, finds it failed and does nothing)."""
    if not ShowRecording.objects.filter(pk=recording.pk).move_to(ShowRecording.Status.FAILED, error_message=reason):
        return recording
    recording.status, recording.error_message = ShowRecording.Status.FAILED, reason
    services.channel_announce(recording.channel)
    alert_raise(studio=recording.channel.studio_id, code="show_recording_failed", subject=recording.show.name,
                message=_("%(show)s of %(start)s was not recorded from the air: %(reason)s") % {
                    "show": recording.show.name, "start": recording.slot_start.isoformat(timespec="minutes"),
                    "reason": reason})
    return recording


def show_recordings_unfinished(*, now: datetime) -> list[ShowRecording]:
    """Recordings still open FINISH_GRACE after their slot, on any node (one that died sweeps none of its own): their
    file was never closed or never made an asset."""
    return list(ShowRecording.objects.filter(status=ShowRecording.Status.RECORDING, slot_end__lt=now - FINISH_GRACE)
                .select_related("show", "channel"))
