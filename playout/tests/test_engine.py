"""Real Liquidsoap channels run by a node agent, on the real database."""

import os
import re
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from django.utils import timezone

from ingest.media import generate_tone
from ingest.models import MediaAsset
from ingest.services import asset_measure_loudness, asset_register_file
from playout import services
from playout.agent.crashes import REST_SECONDS
from playout.liquidsoap import FRAME_SAMPLES, FRAME_SECONDS
from playout.models import AsRunEntry, Channel, PlaylistItem, ScheduledItem
from playout.outputs import file_output_path
from playout.tests.output import WavPipe
from recorders.tests.audio import decoded, sound_spans
from recorders.tests.stream_server import PacedStream, closed_port
from station.models import Alert, EventType, Webhook, WebhookDelivery
from station.tests.factories import ChannelFactory, NodeFactory, PlaylistFactory, ShowInstanceFactory, StudioFactory
from station.tests.processes import database_env, spawn_manage, stop, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("loopback_allowed")]
# An item on air at its slot, not a poll or a track later. How close to the frame is bench/playout_accuracy.py's
# measure, in the output stream; a test's margin holds on a loaded CI machine.
ON_TIME = 0.5
TARGET = -30.0  # LUFS: far from the filler's own level, and from either item's


def _tone(studio, media_root: Path, frequency: int, seconds: float) -> MediaAsset:
    path = generate_tone(media_root / "library" / f"tone-{frequency}.mp3", frequency=frequency, seconds=seconds)
    return asset_register_file(studio=studio, path=path, title=f"Tone {frequency}")


@contextmanager
def _channel_on_air(media_root, **agent_env):
    """A harbor channel on node host-1 with a filler playlist, its agent running."""
    studio = StudioFactory()
    node = NodeFactory(name="host-1")
    filler = PlaylistFactory(studio=studio, name="Filler")
    PlaylistItem.objects.create(playlist=filler, position=0, asset=_tone(studio, media_root, 330, 30))
    port = closed_port()
    channel = ChannelFactory(studio=studio, node=node, status=Channel.Status.STARTING, fallback_playlist=filler,
                             output_settings={"port": port, "mount": "air"}, slug="air")
    agent = spawn_manage("run_node", "--name", "host-1",
                         env=database_env(PLAYOUT_TELNET_BASE_PORT=closed_port() - channel.pk, **agent_env))
    try:
        wait_until(lambda: Channel.objects.get(pk=channel.pk).status == Channel.Status.RUNNING, timeout=30,
                   message="the channel's engine to answer")
        yield channel, f"http://127.0.0.1:{port}/air", media_root
    finally:
        stop(agent)


@pytest.fixture
def on_air_channel(media_root):
    with _channel_on_air(media_root) as on_air:
        yield on_air


def test_with_nothing_scheduled_the_filler_plays_as_real_audio_and_is_logged_as_fallback(on_air_channel):
    channel, url, _ = on_air_channel
    entry = wait_until(lambda: AsRunEntry.objects.filter(channel=channel, ended_at__isnull=True, title="Tone 330").first(),
                       timeout=10, message="the filler on air")
    assert entry.result == AsRunEntry.Result.FALLBACK
    assert entry.asset == channel.fallback_playlist.items.get().asset  # the row says which filler file aired
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-read_intervals", "%+1", "-show_entries", "stream=codec_type,codec_name,sample_rate",
         "-of", "csv=p=0", url],
        capture_output=True, text=True, timeout=20,
    )
    assert probe.stdout.strip() == "mp3,audio,44100"


def test_three_items_back_to_back_go_on_air_at_their_slots_and_the_as_run_log_follows(on_air_channel):
    channel, _, media_root = on_air_channel
    tones = [_tone(channel.studio, media_root, frequency, 2) for frequency in (660, 880, 990)]
    bulletin = PlaylistFactory(studio=channel.studio, name="Bulletin")
    for position, tone in enumerate(tones):
        PlaylistItem.objects.create(playlist=bulletin, position=position, asset=tone)
    slot = timezone.now() + timedelta(seconds=3)  # the change reaches the engine through NOTIFY, not a poll
    length = sum(t.duration_seconds for t in tones)
    instance = ShowInstanceFactory(show__channel=channel, show__playlist=bulletin, start_at=slot,
                                   end_at=slot + timedelta(seconds=length))
    items = wait_until(lambda: list(ScheduledItem.objects.filter(instance=instance).order_by("start_at")) or None,
                       timeout=2, message="the timeline")

    wait_until(
        lambda: AsRunEntry.objects.filter(channel=channel, started_at__gt=instance.end_at - timedelta(seconds=ON_TIME),
                                          result=AsRunEntry.Result.FALLBACK).exists(),
        timeout=20, message="the filler back on air after the show",
    )
    played = list(AsRunEntry.objects.filter(channel=channel, result=AsRunEntry.Result.PLAYED).order_by("started_at"))
    assert [p.scheduled_item_id for p in played] == [i.pk for i in items]
    assert [p.asset_id for p in played] == [t.pk for t in tones]
    for entry, item in zip(played, items):
        assert abs((entry.started_at - item.start_at).total_seconds()) < ON_TIME, (entry.started_at, item.start_at)
        assert entry.duration_seconds == pytest.approx((item.end_at - item.start_at).total_seconds(), abs=ON_TIME)
    assert AsRunEntry.objects.filter(channel=channel, ended_at__isnull=True).count() == 1


def _a_long_item_on_air(on_air_channel):
    """A 12 s item on air in its show, and a 2 s news item not yet scheduled: (channel, slot, show instance, tones)."""
    channel, _, media_root = on_air_channel
    long_tone, news_tone = _tone(channel.studio, media_root, 660, 12), _tone(channel.studio, media_root, 880, 2)
    music = PlaylistFactory(studio=channel.studio, name="Music")
    PlaylistItem.objects.create(playlist=music, asset=long_tone)
    slot = timezone.now() + timedelta(seconds=3)
    instance = ShowInstanceFactory(show__channel=channel, show__playlist=music, start_at=slot,
                                   end_at=slot + timedelta(seconds=12))
    wait_until(lambda: AsRunEntry.objects.filter(channel=channel, asset=long_tone).exists(), timeout=10,
               message="the long item on air")
    return channel, slot, instance, (long_tone, news_tone)


def _cut_short_for_the_news(instance, news_tone):
    """The desk shortens the show on air and puts the news in the time it freed; returns where it cut."""
    news = PlaylistFactory(studio=instance.channel.studio, name="News")
    PlaylistItem.objects.create(playlist=news, asset=news_tone)
    cut = timezone.now() + timedelta(seconds=3)
    instance.end_at = cut
    instance.save(update_fields=["end_at"])
    ShowInstanceFactory(show__channel=instance.channel, show__playlist=news, start_at=cut,
                        end_at=cut + timedelta(seconds=2))
    return cut


def test_a_show_cut_short_on_air_goes_off_at_its_new_end_and_the_next_show_starts_on_time(on_air_channel):
    channel, _, instance, (long_tone, news_tone) = _a_long_item_on_air(on_air_channel)

    cut = _cut_short_for_the_news(instance, news_tone)

    played = wait_until(lambda: AsRunEntry.objects.filter(channel=channel, asset=news_tone).first(), timeout=10,
                        message="the news on air")
    cut_item = AsRunEntry.objects.get(channel=channel, asset=long_tone)
    assert abs((played.started_at - cut).total_seconds()) < ON_TIME, (played.started_at, cut)
    assert abs((cut_item.ended_at - cut).total_seconds()) < ON_TIME, (cut_item.ended_at, cut)


def test_an_item_skipped_then_cut_short_leaves_the_next_show_to_play_whole(on_air_channel):
    channel, slot, instance, (_, news_tone) = _a_long_item_on_air(on_air_channel)
    services.channel_skip(channel=Channel.objects.get(pk=channel.pk))  # the filler covers the rest of the slot
    wait_until(lambda: AsRunEntry.objects.filter(channel=channel, result=AsRunEntry.Result.FALLBACK,
                                                 started_at__gt=slot).exists(), timeout=5, message="the filler")

    _cut_short_for_the_news(instance, news_tone)

    wait_until(lambda: AsRunEntry.objects.filter(channel=channel, asset=news_tone, ended_at__isnull=False).exists(),
               timeout=10, message="the news on air and over")
    played = AsRunEntry.objects.get(channel=channel, asset=news_tone)
    assert played.result == AsRunEntry.Result.PLAYED
    assert played.duration_seconds == pytest.approx(2, abs=ON_TIME)


def test_an_item_already_queued_for_its_slot_plays_once_when_its_show_is_edited_just_before(on_air_channel):
    channel, _, media_root = on_air_channel
    first, second, added = (_tone(channel.studio, media_root, frequency, 3) for frequency in (660, 880, 990))
    show = PlaylistFactory(studio=channel.studio, name="Show")
    for position, tone in enumerate((first, second)):
        PlaylistItem.objects.create(playlist=show, position=position, asset=tone)
    slot = timezone.now() + timedelta(seconds=3)
    ShowInstanceFactory(show__channel=channel, show__playlist=show, start_at=slot, end_at=slot + timedelta(seconds=9))
    wait_until(lambda: AsRunEntry.objects.filter(channel=channel, asset=first).exists(), timeout=10,
               message="the first item on air")

    # the second item is in the engine, waiting for its slot, when the desk adds a third to the show
    time.sleep(max(0.0, (slot + timedelta(seconds=2) - timezone.now()).total_seconds()))
    PlaylistItem.objects.create(playlist=show, position=2, asset=added)

    wait_until(lambda: AsRunEntry.objects.filter(channel=channel, asset=added).exists(), timeout=15,
               message="the added item on air")
    played = AsRunEntry.objects.filter(channel=channel, result=AsRunEntry.Result.PLAYED).order_by("started_at")
    assert [entry.asset_id for entry in played] == [first.pk, second.pk, added.pk]
    assert abs((played.last().started_at - (slot + timedelta(seconds=6))).total_seconds()) < ON_TIME


def test_a_node_without_the_shared_storage_fetches_the_media_from_the_station_and_plays_it(media_root, live_server):
    with _channel_on_air(media_root, PLAYOUT_SHARED_MEDIA="false", STATION_URL=live_server.url) as (channel, _, _):
        filler = wait_until(lambda: AsRunEntry.objects.filter(channel=channel, title="Tone 330").first(), timeout=15,
                            message="the filler, fetched from the station, on air")
        tone = _tone(channel.studio, media_root, 550, 2)
        news = PlaylistFactory(studio=channel.studio, name="News")
        PlaylistItem.objects.create(playlist=news, asset=tone)
        slot = timezone.now() + timedelta(seconds=3)
        ShowInstanceFactory(show__channel=channel, show__playlist=news, start_at=slot, end_at=slot + timedelta(seconds=2))
        played = wait_until(lambda: AsRunEntry.objects.filter(channel=channel, result=AsRunEntry.Result.PLAYED).first(),
                            timeout=10, message="the fetched item on air")

    assert filler.result == AsRunEntry.Result.FALLBACK and played.asset_id == tone.pk
    assert abs((played.started_at - slot).total_seconds()) < ON_TIME
    cached = sorted(path.name for path in (media_root.parent / "node-cache" / "host-1" / "media").iterdir())
    assert cached == sorted(f"{asset.checksum}.mp3" for asset in (tone, channel.fallback_playlist.items.get().asset))


def test_a_webstream_goes_on_air_for_its_slot_and_an_unreachable_one_alerts_while_the_filler_covers(on_air_channel, tmp_path):
    channel, _, _ = on_air_channel
    stream = PacedStream(tmp_path)
    try:
        relay, dead = PlaylistFactory(studio=channel.studio, name="Relay"), PlaylistFactory(studio=channel.studio, name="Dead")
        PlaylistItem.objects.create(playlist=relay, webstream_url=stream.url, webstream_seconds=3)
        PlaylistItem.objects.create(playlist=dead, webstream_url=f"http://127.0.0.1:{closed_port()}/gone.mp3",
                                    webstream_seconds=3)
        slot = timezone.now() + timedelta(seconds=3)
        ShowInstanceFactory(show__channel=channel, show__playlist=relay, start_at=slot, end_at=slot + timedelta(seconds=3))
        ShowInstanceFactory(show__channel=channel, show__playlist=dead, start_at=slot + timedelta(seconds=3),
                            end_at=slot + timedelta(seconds=6))
        alert = wait_until(lambda: Alert.objects.filter(code="webstream_unreachable").first(), timeout=15,
                           message="the unreachable webstream reported")
        wait_until(lambda: AsRunEntry.objects.filter(channel=channel, result=AsRunEntry.Result.FALLBACK,
                                                     started_at__gte=slot + timedelta(seconds=2.9)).exists(),
                   timeout=10, message="the filler after the relay")
    finally:
        stream.close()

    relayed = AsRunEntry.objects.get(channel=channel, result=AsRunEntry.Result.PLAYED)
    assert relayed.scheduled_item.webstream_url == stream.url
    assert abs((relayed.started_at - slot).total_seconds()) < ON_TIME
    assert relayed.duration_seconds == pytest.approx(3, abs=ON_TIME)
    assert "gone.mp3" in alert.message and "filler" in alert.message


@contextmanager
def _channel_on_host_1(media_root, probe_seconds=0.5, spare=True, filler_seconds=60, output=None, missed_probes=3):
    """A harbor channel on host-1 (or ``output``: (type, settings)) with a filler, agents on host-1 and (``spare``)
    host-2, and the health loop."""
    fast = {"AGENT_HEARTBEAT_SECONDS": 0.5, "PLAYOUT_PROBE_SECONDS": probe_seconds, "PLAYOUT_MISSED_PROBES": missed_probes}
    studio = StudioFactory()
    first, second = NodeFactory(name="host-1"), NodeFactory(name="host-2")
    filler = PlaylistFactory(studio=studio, name="Filler")
    PlaylistItem.objects.create(playlist=filler, position=0, asset=_tone(studio, media_root, 330, filler_seconds))
    output_type, output_settings = output or (Channel.Output.HARBOR, {"port": closed_port(), "mount": "air"})
    channel = ChannelFactory(studio=studio, node=first, status=Channel.Status.STARTING, fallback_playlist=filler,
                             output_type=output_type, output_settings=output_settings, slug="air")
    agents = {
        name: spawn_manage("run_node", "--name", name, env=database_env(PLAYOUT_TELNET_BASE_PORT=closed_port() - channel.pk, **fast))
        for name in ("host-1", "host-2")[:2 if spare else 1]
    }
    health = spawn_manage("tick", "--job", "playout.health", "--for", "120", env=database_env(**fast))
    try:
        wait_until(lambda: AsRunEntry.objects.filter(channel=channel, node=first, title="Tone 330").exists(), timeout=30,
                   message="the channel on air on host-1")
        yield channel, agents, first, second
    finally:
        stop(health, *agents.values())


def _engine_pid(agent) -> int:
    return int(subprocess.run(["pgrep", "-P", str(agent.pid), "liquidsoap"], capture_output=True, text=True).stdout.split()[0])


def _back_on_air(channel, node, since):
    return wait_until(lambda: AsRunEntry.objects.filter(channel=channel, node=node, started_at__gt=since)
                      .exclude(title="Silence").first(), timeout=30, message=f"the channel back on air on {node}")


def test_an_engine_whose_output_cannot_start_is_restarted_until_it_can(media_root):
    # Another process holds the harbor's port: Liquidsoap would play on to nobody, answering its probes.
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        studio = StudioFactory()
        filler = PlaylistFactory(studio=studio, name="Filler")
        PlaylistItem.objects.create(playlist=filler, position=0, asset=_tone(studio, media_root, 330, 30))
        channel = ChannelFactory(studio=studio, node=NodeFactory(name="host-1"), status=Channel.Status.STARTING,
                                 fallback_playlist=filler, output_settings={"port": port, "mount": "air"}, slug="air")
        agent = spawn_manage("run_node", "--name", "host-1",
                             env=database_env(PLAYOUT_TELNET_BASE_PORT=closed_port() - channel.pk))
        try:
            failing = wait_until(lambda: Alert.objects.filter(code="channel_engine_failing", subject=channel.name).first(),
                                 timeout=30, message="the engine failing")
            assert "Address already in use" in failing.message
            holder.close()
            back = wait_until(lambda: AsRunEntry.objects.filter(channel=channel, title="Tone 330").first(),
                              timeout=30, message="the filler on air once the port is free")
        finally:
            stop(agent)
    assert back.started_at > failing.created_at


def test_killing_the_agent_fails_the_channel_over_to_a_second_agent_and_the_as_run_log_continues(media_root):
    with _channel_on_host_1(media_root) as (channel, agents, first, second):
        os.kill(agents["host-1"].pid, signal.SIGKILL)
        killed_at = timezone.now()

        taken = _back_on_air(channel, second, killed_at)
        channel.refresh_from_db()
        assert channel.node == second and channel.status == Channel.Status.RUNNING
        assert channel.restart_count == 1
        assert (taken.started_at - killed_at).total_seconds() <= 10
        assert AsRunEntry.objects.filter(channel=channel, ended_at__isnull=True).count() == 1
        assert not AsRunEntry.objects.filter(channel=channel, node=first, ended_at__isnull=True).exists()


def test_a_killed_agent_is_known_gone_by_its_ended_session_before_any_probes_are_missed(media_root):
    # So many missed probes that only the agent's ended database session can move the channel within the test.
    with _channel_on_host_1(media_root, probe_seconds=1, missed_probes=1000) as (channel, agents, first, second):
        os.kill(agents["host-1"].pid, signal.SIGKILL)
        killed_at = timezone.now()

        _back_on_air(channel, second, killed_at)
        channel.refresh_from_db()
        assert channel.node == second and channel.restart_count == 1
        assert Alert.objects.filter(code="channel_failed_over", subject=channel.name).exists()


def test_on_a_one_node_station_a_killed_agents_channel_comes_back_with_its_restarted_agent(media_root):
    with _channel_on_host_1(media_root, probe_seconds=1, spare=False) as (channel, agents, first, _):
        os.kill(agents["host-1"].pid, signal.SIGKILL)
        wait_until(lambda: Channel.objects.get(pk=channel.pk).status == Channel.Status.ERROR, timeout=20,
                   message="no node to take it: in error")
        restarted_at = timezone.now()
        restarted = spawn_manage("run_node", "--name", "host-1",
                                 env=database_env(PLAYOUT_TELNET_BASE_PORT=closed_port() - channel.pk))  # as systemd does
        try:
            _back_on_air(channel, first, restarted_at)
        finally:
            stop(restarted)
    channel.refresh_from_db()
    assert channel.node == first and channel.status == Channel.Status.RUNNING
    assert Alert.objects.filter(code="channel_no_failover", acknowledged_at__isnull=False).exists()  # closed on air


def test_a_frozen_agent_whose_channel_failed_over_stops_its_engine_when_it_wakes_and_writes_nothing(media_root):
    # A 2 s filler: the frozen agent's engine plays on and reports each new play, which wait in its pipe. A file
    # output: on this one machine the frozen engine keeps a harbor's port, which the second host's would need.
    with _channel_on_host_1(media_root, filler_seconds=2, output=(Channel.Output.FILE, {"format": "wav"})) as (
            channel, agents, first, second):
        engine = _engine_pid(agents["host-1"])
        os.kill(agents["host-1"].pid, signal.SIGSTOP)  # a zombie: it will wake believing the channel is its own
        frozen_at = timezone.now()
        _back_on_air(channel, second, frozen_at)
        time.sleep(3)  # more plays reported by the frozen engine meanwhile
        os.kill(agents["host-1"].pid, signal.SIGCONT)
        woke_at = time.monotonic()
        wait_until(lambda: not os.path.exists(f"/proc/{engine}") or Path(f"/proc/{engine}/stat").read_text()
                   .split(") ", 1)[1].startswith("Z"), timeout=10, interval=0.02, message="its engine stopped")
        stopped_after = time.monotonic() - woke_at
        time.sleep(1)  # what it would write on waking has been tried

        assert stopped_after < 2.0  # within the default heartbeat (2 s): its first probe report was refused
        assert agents["host-1"].poll() is None  # it serves on
        channel.refresh_from_db()
        assert (channel.node, channel.status) == (second, Channel.Status.RUNNING)
        # nothing from host-1 after it froze: the plays its engine reported were refused, not logged
        assert not AsRunEntry.objects.filter(channel=channel, node=first, started_at__gt=frozen_at).exists()
        open_rows = AsRunEntry.objects.filter(channel=channel, ended_at__isnull=True)
        assert [row.node for row in open_rows] == [second]


def test_an_hls_output_is_played_by_a_listener_from_the_web_tier(media_root, live_server, settings, tmp_path):
    settings.PLAYOUT_CACHE_ROOT = media_root.parent / "node-cache"  # the agents' (database_env): one host
    settings.PLAYOUT_HLS_URL = f"{live_server.url}/public/hls"
    with _channel_on_host_1(media_root, spare=False, output=(Channel.Output.HLS, {"segment_seconds": 1})) as (
            channel, _agents, _first, _second):
        url = Channel.objects.get(pk=channel.pk).listener_url
        assert url == f"{live_server.url}/public/hls/channel-{channel.pk}/live.m3u8"
        heard = tmp_path / "heard.wav"
        # from the newest segment: older ones may hold the silence before the filler came on air
        wait_until(lambda: subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-live_start_index", "-1",
                                           "-i", url, "-t", "2", "-ac", "1", str(heard)], timeout=30).returncode == 0,
                   timeout=30, interval=1, message="a listener's player to read the stream")

    samples = decoded(heard)[-44100:]  # its last second
    assert len(samples) == 44100
    crossings = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
    assert crossings / 2 == pytest.approx(330, abs=10)  # the filler's tone, whole
    # sound in every tenth of it, at the channel's loudness target: far above silence
    assert all(max(abs(value) for value in samples[start:start + 4410]) > 1000 for start in range(0, 44100, 4410))
    for refused in ("live.txt", "live.m3u8.bak", "..m3u8", "live%00.m3u8"):
        assert requests.get(f"{live_server.url}/public/hls/channel-{channel.pk}/{refused}", timeout=5).status_code == 404


def test_a_killed_engine_is_restarted_on_its_node_and_one_that_keeps_dying_fails_over(media_root):
    # 0.2 s probes: three are missed long before a cold start answers (1.5 s), yet the node that restarts its engine
    # keeps it (it says so: the channel is starting there); only the third death in a minute lets the health job move it.
    with _channel_on_host_1(media_root, probe_seconds=0.2) as (channel, agents, first, second):
        for _attempt in range(2):
            os.kill(_engine_pid(agents["host-1"]), signal.SIGKILL)
            killed_at = timezone.now()
            back = _back_on_air(channel, first, killed_at)
            assert (back.started_at - killed_at).total_seconds() <= 10
        assert not Alert.objects.filter(code="channel_failed_over").exists()

        os.kill(_engine_pid(agents["host-1"]), signal.SIGKILL)  # the third time in a minute
        killed_at = timezone.now()
        taken = _back_on_air(channel, second, killed_at)

        assert (taken.started_at - killed_at).total_seconds() <= 2 + 10  # the threshold, then a cold start
        channel.refresh_from_db()
        assert channel.node == second and channel.restart_count == 1
        assert AsRunEntry.objects.filter(channel=channel, ended_at__isnull=True).count() == 1


def test_an_engine_that_keeps_dying_on_a_lone_node_is_tried_there_again_after_a_rest(media_root):
    with _channel_on_host_1(media_root, probe_seconds=2, spare=False) as (channel, agents, first, _second):
        for attempt in range(3):  # the third time in a minute: nowhere to move it
            os.kill(_engine_pid(agents["host-1"]), signal.SIGKILL)
            killed_at = timezone.now()
            if attempt < 2:
                _back_on_air(channel, first, killed_at)
        told = wait_until(lambda: Alert.objects.filter(code="channel_engine_failing").first(), timeout=10,
                          message="the desk told the engine keeps dying")
        back = _back_on_air(channel, first, killed_at)  # nobody restarts it

    assert REST_SECONDS[0] <= (back.started_at - killed_at).total_seconds() <= REST_SECONDS[0] + 15  # re-arm, cold start
    channel.refresh_from_db()
    assert channel.status == Channel.Status.RUNNING and channel.node == first and channel.restart_count == 0
    assert f"again in {REST_SECONDS[0]} s" in told.message
    # meanwhile the health job found nowhere to move it and put it in error, as before; back on air, both alerts closed
    told_codes = ["channel_engine_failing", "channel_no_failover"]
    assert sorted(Alert.objects.filter(code__in=told_codes).values_list("code", flat=True)) == sorted(told_codes)
    assert not Alert.objects.filter(code__in=told_codes, acknowledged_at__isnull=True).exists()


def test_two_items_12_lu_apart_play_at_the_channels_loudness_target(on_air_channel, tmp_path):
    channel, url, media_root = on_air_channel
    Channel.objects.filter(pk=channel.pk).update(loudness_target_lufs=TARGET)
    items = []
    for frequency, gain_db in ((660, 0), (880, -12)):
        path = media_root / "library" / f"level-{frequency}.mp3"
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        f"sine=frequency={frequency}:sample_rate=44100:duration=8", "-af", f"volume={gain_db}dB", "-ac", "2",
                        str(path)], check=True, timeout=60)
        asset = asset_register_file(studio=channel.studio, path=path, title=f"Level {frequency}")
        items.append(asset_measure_loudness(asset_id=asset.pk))
    assert items[0].loudness_lufs - items[1].loudness_lufs == pytest.approx(12, abs=0.5)
    # Each in a show of its own, cut at its end (the files are 8 s long), the second after a second of filler:
    # returning to the queue, the engine replays the first item's metadata, gain included, beside the second's own.
    slot = timezone.now() + timedelta(seconds=3)
    for index, asset in enumerate(items):
        playlist = PlaylistFactory(studio=channel.studio, name=f"Level {index}")
        PlaylistItem.objects.create(playlist=playlist, asset=asset)
        start = slot + timedelta(seconds=7 * index)
        instance = ShowInstanceFactory(show__channel=channel, show__playlist=playlist, start_at=start,
                                       end_at=start + timedelta(seconds=6))
    capture = tmp_path / "air.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", url, "-t",
                    str((instance.end_at - timezone.now()).total_seconds() + 3), str(capture)], check=True, timeout=40)

    # The momentary loudness (400 ms) of each item's tone in what left the engine, every 100 ms (a narrow band
    # around its frequency: the other item and the filler, a 330 Hz tone, fall 15 dB and more below it).
    for frequency in (660, 880):
        analysed = subprocess.run(
            ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(capture), "-af",
             f"bandpass=f={frequency}:width_type=q:width=10,ebur128=framelog=info", "-f", "null", "-"],
            capture_output=True, text=True, timeout=60)
        momentary = [float(value) for value in re.findall(r"\bM:\s*(-?[\d.]+)", analysed.stderr)]
        at_target = sum(abs(value - TARGET) <= 1 for value in momentary)
        assert at_target >= 40, (frequency, at_target, momentary)  # 4 s of its 6 at the target
    assert AsRunEntry.objects.filter(channel=channel, asset__in=items, result=AsRunEntry.Result.PLAYED).count() == 2


def _tone_then_silence(studio, media_root: Path, *, frequency: int, tone_seconds: float, silence_seconds: float,
                       title: str, quiet: bool = False) -> MediaAsset:
    path = media_root / "library" / f"silent-tail-{frequency}.mp3"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency={frequency}:sample_rate=44100:duration={tone_seconds},apad=pad_dur={silence_seconds}",
                    "-ac", "2", str(path)], check=True, timeout=60)
    asset = asset_register_file(studio=studio, path=path, title=title)
    MediaAsset.objects.filter(pk=asset.pk).update(intentionally_quiet=quiet)
    return MediaAsset.objects.get(pk=asset.pk)


def test_an_item_silent_after_2_s_is_dead_air_the_engine_replaces_with_the_filler_and_the_desk_hears_of(
        on_air_channel, tmp_path):
    channel, url, media_root = on_air_channel
    limit = 4  # changed on the running engine from the default 5 s, as staff would in the admin
    Channel.objects.filter(pk=channel.pk).update(dead_air_seconds=limit)
    webhook = Webhook.objects.create(studio=channel.studio, name="desk", url="https://desk.example.org/hook",
                                     event_types=[EventType.ALERT])
    minute = _tone_then_silence(channel.studio, media_root, frequency=990, tone_seconds=1, silence_seconds=limit + 1,
                                title="A minute's silence", quiet=True)
    broken = _tone_then_silence(channel.studio, media_root, frequency=660, tone_seconds=2, silence_seconds=10,
                                title="Broken feature")
    playlist = PlaylistFactory(studio=channel.studio, name="Evening")
    for position, asset in enumerate((minute, broken)):
        PlaylistItem.objects.create(playlist=playlist, position=position, asset=asset)
    slot = timezone.now() + timedelta(seconds=3)
    ShowInstanceFactory(show__channel=channel, show__playlist=playlist, start_at=slot,
                        end_at=slot + timedelta(seconds=minute.duration_seconds + broken.duration_seconds))
    capture = tmp_path / "air.wav"
    recording = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", url, "-t",
                                  str(3 + minute.duration_seconds + 2 + limit + 3), str(capture)])
    try:
        dead_air = wait_until(lambda: AsRunEntry.objects.filter(channel=channel, result=AsRunEntry.Result.DEAD_AIR,
                                                                ended_at__isnull=False).first(),
                              timeout=40, message="the dead air logged and ended")
        recording.wait(timeout=30)
    finally:
        recording.kill()

    # In what left the engine: the quiet item's silence played through; the broken item's ended within the limit + 1 s.
    spans = sound_spans(decoded(capture), quiet_seconds=1)
    gaps = [following[0] - previous[1] for previous, following in zip(spans, spans[1:])]
    assert len(gaps) == 2, spans
    assert gaps[0] == pytest.approx(limit + 1, abs=0.3)
    assert limit <= gaps[1] <= limit + 1
    # The as-run log: the broken item, its dead air from when it fell silent, the filler after it.
    broken_on_air = AsRunEntry.objects.get(channel=channel, asset=broken, result=AsRunEntry.Result.PLAYED)
    assert dead_air.scheduled_item_id == broken_on_air.scheduled_item_id and dead_air.title == "Broken feature"
    assert abs((dead_air.started_at - broken_on_air.started_at).total_seconds() - 2) < ON_TIME
    assert limit <= dead_air.duration_seconds <= limit + 1
    after = AsRunEntry.objects.filter(channel=channel, started_at__gte=dead_air.ended_at).order_by("started_at").first()
    assert after.result == AsRunEntry.Result.FALLBACK and after.title == "Tone 330"
    assert AsRunEntry.objects.get(channel=channel, asset=minute).result == AsRunEntry.Result.PLAYED
    alert = Alert.objects.get(code="dead_air", subject=channel.name)
    assert alert.severity == Alert.Severity.CRITICAL and "Broken feature" in alert.message
    assert WebhookDelivery.objects.filter(webhook=webhook, payload__code="dead_air").exists()

    # A paused channel is silent on purpose: not dead air.
    services.channel_pause(channel=Channel.objects.get(pk=channel.pk))
    time.sleep(limit + 1.5)
    services.channel_resume(channel=Channel.objects.get(pk=channel.pk))
    assert AsRunEntry.objects.filter(channel=channel, result=AsRunEntry.Result.DEAD_AIR).count() == 1


def _icy_titles(url: str, *, until: str, timeout: float) -> list[str]:
    """The titles a listener's player shows (ICY metadata, as players ask for it), read until ``until`` comes."""
    host, port, path = re.fullmatch(r"http://([^:/]+):(\d+)(/.*)", url).groups()
    titles, deadline = [], time.monotonic() + timeout
    with socket.create_connection((host, int(port)), timeout=timeout) as listener:
        listener.sendall(f"GET {path} HTTP/1.0\r\nIcy-MetaData: 1\r\n\r\n".encode())
        stream = listener.makefile("rb")
        headers = b"".join(iter(lambda: stream.readline(), b"\r\n")).decode("latin-1").lower()
        metaint = int(re.search(r"icy-metaint:\s*(\d+)", headers)[1])
        while until not in titles and time.monotonic() < deadline:
            stream.read(metaint)
            block = stream.read(stream.read(1)[0] * 16).rstrip(b"\0").decode()
            if found := re.search(r"StreamTitle='(.*?)';", block):
                titles.append(found[1])
    return titles


def test_listeners_players_show_the_title_on_air_as_it_changes(on_air_channel):
    channel, url, media_root = on_air_channel
    wait_until(lambda: AsRunEntry.objects.filter(channel=channel, title="Tone 330").exists(), timeout=10,
               message="the filler on air")
    tone = _tone(channel.studio, media_root, 550, 2)
    MediaAsset.objects.filter(pk=tone.pk).update(title="News at noon\nsharp")  # a line break can't end the command
    news = PlaylistFactory(studio=channel.studio, name="News")
    PlaylistItem.objects.create(playlist=news, asset=tone)
    slot = timezone.now() + timedelta(seconds=3)
    ShowInstanceFactory(show__channel=channel, show__playlist=news, start_at=slot, end_at=slot + timedelta(seconds=2))

    titles = _icy_titles(url, until="News at noon sharp", timeout=10)

    assert titles[0] == "Tone 330" and titles[-1] == "News at noon sharp"
    assert datetime.now(UTC) - slot < timedelta(seconds=ON_TIME + 1)  # its title came with it, not a poll later


def test_operators_skip_pause_and_resume_and_the_as_run_log_says_so(on_air_channel):
    channel, _, _ = on_air_channel
    on_air = wait_until(lambda: AsRunEntry.objects.filter(channel=channel, ended_at__isnull=True, title="Tone 330").first(),
                        timeout=10, message="the filler on air")

    services.channel_skip(channel=Channel.objects.get(pk=channel.pk))
    skipped = wait_until(lambda: (e := AsRunEntry.objects.get(pk=on_air.pk)).ended_at and e, timeout=5, message="the skip")
    assert skipped.result == AsRunEntry.Result.SKIPPED

    services.channel_pause(channel=Channel.objects.get(pk=channel.pk))
    paused = wait_until(lambda: AsRunEntry.objects.filter(channel=channel, ended_at__isnull=True,
                                                          result=AsRunEntry.Result.PAUSED).first(), timeout=5, message="pause")
    assert paused.title == "Paused"

    services.channel_resume(channel=Channel.objects.get(pk=channel.pk))
    wait_until(lambda: AsRunEntry.objects.filter(channel=channel, ended_at__isnull=True, result=AsRunEntry.Result.FALLBACK,
                                                 started_at__gt=paused.started_at).exists(), timeout=5, message="resume")
    assert AsRunEntry.objects.get(pk=paused.pk).duration_seconds > 0


def test_items_go_on_air_on_the_first_frame_at_or_after_their_slot_in_the_output_stream(media_root):
    """Measured in what leaves the engine: each item's first sample within a few milliseconds after its slot, never
    early, and items back to back with not a frame of silence between them."""
    studio = StudioFactory()
    node = NodeFactory(name="host-1")
    channel = ChannelFactory(studio=studio, node=node, status=Channel.Status.STARTING, output_type=Channel.Output.FILE,
                             output_settings={"format": "wav"}, slug="air")
    output = WavPipe(file_output_path(media_root.parent / "node-cache" / node.name, channel.pk, "wav"))
    pair, single = PlaylistFactory(studio=studio, name="Pair"), PlaylistFactory(studio=studio, name="Single")
    tones = [asset_register_file(studio=studio, title=f"Tone {frequency}", path=generate_tone(
        media_root / "library" / f"tone-{frequency}.wav", frequency=frequency, seconds=1)) for frequency in (660, 880, 990)]
    for position, tone in enumerate(tones[:2]):  # WAV: a file's length is its audio's (an MP3's has the codec's padding)
        PlaylistItem.objects.create(playlist=pair, position=position, asset=tone)
    PlaylistItem.objects.create(playlist=single, asset=tones[2])
    agent = spawn_manage("run_node", "--name", "host-1", env=database_env())
    try:
        wait_until(lambda: Channel.objects.get(pk=channel.pk).status == Channel.Status.RUNNING, timeout=30,
                   message="the channel's engine to answer")
        first = timezone.now() + timedelta(seconds=4)
        # then five singles, each slot's phase against the frames another: an item a frame early is more than 1 ms
        # early at one of them (all but certainly)
        slots = [first, *(first + timedelta(seconds=3.5 + 1.5 * n + 0.00047 * n) for n in range(5))]
        ShowInstanceFactory(show__channel=channel, show__playlist=pair, start_at=slots[0],
                            end_at=slots[0] + timedelta(seconds=2))
        for slot in slots[1:]:
            ShowInstanceFactory(show__channel=channel, show__playlist=single, start_at=slot,
                                end_at=slot + timedelta(seconds=1))
        wait_until(lambda: AsRunEntry.objects.filter(channel=channel, started_at__gt=slots[-1],
                                                     result=AsRunEntry.Result.FALLBACK).exists(),
                   timeout=25, message="silence again after the last item")
    finally:
        stop(agent)

    left, anchor = output.left()
    spans = [(anchor + start, anchor + end) for start, end in sound_spans(left)]
    assert len(spans) == len(slots), spans
    for (start, end), slot, length in zip(spans, slots, (2, 1, 1, 1, 1, 1)):
        late = start - slot.timestamp()
        assert -0.001 <= late <= 0.010, f"{late * 1000:.2f} ms late"  # bench/playout_accuracy.py measures the spread
        assert end - start == pytest.approx(length, abs=FRAME_SECONDS + 0.002)
    # the pair back to back: not a frame of silence between them
    pair_samples = left[round((spans[0][0] - anchor) * 44100):round((spans[0][1] - anchor) * 44100)]
    quiet_run, longest = 0, (0, 0)
    for index, value in enumerate(pair_samples):
        quiet_run = quiet_run + 1 if abs(value) < 50 else 0
        longest = max(longest, (quiet_run, index))
    assert longest[0] < FRAME_SAMPLES // 4, f"{longest[0]} samples of silence ending {longest[1] / 44100:.4f} s in"
