"""HLS: the engine writes AAC segments and their playlists to a directory on its node; the web tier (``playout.views.hls``,
on a one-host station) or any static server on the node serves it to listeners at
``PLAYOUT_HLS_URL``/channel-<id>/live.m3u8.

The directory is the station's (``hls_directory``) and holds the live segments and a few more, never a growing file.
"""

from pathlib import Path

from django.conf import settings as django_settings

from playout.outputs.base import BITRATE, Output, Setting, whole_number

PLAYLIST = "live.m3u8"  # the master playlist; the engine names the variant and segments after the stream ("aac")
STATE = "state.json"


def hls_directory(node_dir: Path, channel_id: int) -> Path:
    return node_dir / "outputs" / "hls" / f"channel-{int(channel_id)}"


class HlsOutput(Output):
    name = "hls"
    schema = {"bitrate": BITRATE, "segment_seconds": Setting(whole_number(1, 10), 2),
              "segments": Setting(whole_number(3, 20), 5)}

    def file_path(self, node_dir, channel_id, settings):
        return hls_directory(node_dir, channel_id) / PLAYLIST

    def liquidsoap(self, settings, source, liq_string, *, file_path=None):
        encoder = (f'%ffmpeg(format="mpegts", %audio(codec="aac", b="{int(settings["bitrate"])}k", ar=44100, '
                   'channels=2))')
        segments = int(settings["segments"])
        # persist_at: an engine stopped and started again (a restart asked for) numbers its segments on from where it
        # stopped, so players' media sequence does not go back; one that died, or a new node, starts from 1. The file
        # stays in the directory, whose server hands out playlists and segments only.
        return (f"output.file.hls(playlist={liq_string(PLAYLIST)}, segment_duration={float(settings['segment_seconds'])}, "
                f"segments={segments}, segments_overhead={segments}, persist_at={liq_string(STATE)}, "
                "perm=0o644, perms=0o755, "
                f"{liq_string(file_path.parent)}, [({liq_string('aac')}, {encoder})], {source})")

    def listener_url(self, channel, settings):
        return f"{django_settings.PLAYOUT_HLS_URL.rstrip('/')}/channel-{int(channel.pk)}/{PLAYLIST}"


OUTPUT = HlsOutput()
