"""What staff type never reaches Liquidsoap as code (issue 14, confirmed 1 and 3).

A channel created over the API with ``"mount": "#{process.read('id')}"`` ran the command as root:
Liquidsoap interpolates ``#{…}`` inside any string literal, and the values went into the script
JSON-quoted. Now every output setting is validated by type and format, every text reaches a
script through one escaping function, request URIs carry ids only and file outputs are named by
the station. Real Liquidsoap where the attack needs the engine.
"""

import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from ingest.media import generate_tone
from ingest.models import MediaAsset
from playout.liquidsoap import Gateway, LiquidsoapEngine, liq_string, output_clause, render_script, request_uri
from playout.models import AsRunEntry, Channel, PlaylistItem
from playout.outputs import file_output_path
from playout.tests.test_engine import _channel_on_air, _tone
from recorders.tests.stream_server import closed_port
from station.models import Alert
from station.tests import factories
from station.tests.processes import database_env, spawn_manage, stop, wait_until

HOSTILE_TEXT = [
    "#{process.read('id')}",
    '#{file.write(data="owned", "MARKER")}',
    '" ^ process.read("id") ^ "',
    "' ^ process.read('id') ^ '",
    "\\#{1+1}",
    "\\\" #{1}",
    "a\nb\r\nc",
    "$(title) %Y %s",
    "%23%7B1%7D",
    "é ✓ 📻 ",
    "}{#",
    "",
]


@pytest.mark.slow
@pytest.mark.parametrize("value", HOSTILE_TEXT)
def test_any_text_comes_out_of_a_script_exactly_as_given_and_runs_nothing(tmp_path, value):
    marker = tmp_path / "marker"
    value = value.replace("MARKER", str(marker))
    out = tmp_path / "out.txt"
    script = tmp_path / "probe.liq"
    script.write_text(f"settings.init.allow_root.set(true)\nfile.write(data={liq_string(value)}, {liq_string(out)})\n"
                      "shutdown()\n")

    subprocess.run(["liquidsoap", str(script)], capture_output=True, timeout=60)  # it exits: no output to run

    assert out.read_bytes().decode() == value
    assert not marker.exists()


ATTACKS = {
    "interpolated mount": ("harbor", {"port": 8191, "mount": "#{process.read('id')}"}, "mount"),
    "quoted mount": ("harbor", {"port": 8191, "mount": 'live", process.read("id"), "'}, "mount"),
    "mount with a line break": ("harbor", {"port": 8191, "mount": "live\nshutdown()"}, "mount"),
    "port as text": ("harbor", {"port": "8191"}, "port"),
    "port not whole": ("harbor", {"port": 8191.5}, "port"),
    "port as a boolean": ("harbor", {"port": True}, "port"),
    "port outside the station's range": ("harbor", {"port": 22}, "port"),
    "bitrate as text": ("harbor", {"port": 8191, "bitrate": "128k"}, "bitrate"),
    "no port": ("harbor", {"mount": "live"}, "port"),
    "interpolated host": ("icecast", {"host": "#{process.read('id')}", "password": "x"}, "host"),
    "password with a line break": ("icecast", {"host": "stream.example.org", "password": "x\n#{1}"}, "password"),
    "internal host": ("icecast", {"host": "127.0.0.1", "password": "hackme"}, "host"),
    "metadata host": ("icecast", {"host": "169.254.169.254", "password": "hackme"}, "host"),
    "another notation of loopback": ("icecast", {"host": "2130706433", "password": "hackme"}, "host"),
    "an unknown setting": ("harbor", {"port": 8191, "script": "shutdown()"}, "script"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("output_type, output_settings, named", ATTACKS.values(), ids=ATTACKS)
def test_the_api_refuses_output_settings_that_are_not_what_they_must_be(api, operator_b, studio_b, output_type,
                                                                         output_settings, named):
    response = api(operator_b).post("/api/v1/channels/", {
        "studio": studio_b.pk, "name": "Owned", "slug": "owned", "output_type": output_type,
        "output_settings": output_settings}, format="json")

    assert response.status_code == 400, response.json()
    messages = response.json()["error"]["fields"]["output_settings"]
    assert any(named in message for message in messages), messages
    assert not Channel.objects.filter(slug="owned").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("output_settings, named", [({"path": "/etc/cron.d/owned"}, "path"),
                                                    ({"format": "../../etc/passwd"}, "format")])
def test_a_file_output_takes_no_path_and_only_a_superuser_chooses_one(api, operator_b, superuser, studio_b,
                                                                      output_settings, named):
    channel = {"studio": studio_b.pk, "name": "Tap", "slug": "tap", "output_type": "file"}

    for_staff = api(operator_b).post("/api/v1/channels/", {**channel, "output_settings": {"format": "wav"}}, format="json")
    malformed = api(superuser).post("/api/v1/channels/", {**channel, "output_settings": output_settings}, format="json")
    fine = api(superuser).post("/api/v1/channels/", {**channel, "output_settings": {"format": "wav"}}, format="json")

    assert for_staff.status_code == 400 and for_staff.json()["error"]["code"] == "output_for_superusers"
    assert malformed.status_code == 400 and named in str(malformed.json()["error"]["fields"]["output_settings"])
    assert fine.status_code == 201


@pytest.mark.django_db
def test_the_admin_refuses_them_too(client, operator_b, studio_b):
    client.force_login(operator_b)
    response = client.post("/admin/playout/channel/add/", {
        "studio": studio_b.pk, "name": "Owned", "slug": "owned", "output_type": "harbor",
        "output_settings": '{"port": 8191, "mount": "#{process.read(\'id\')}"}', "restart_count": 0})

    assert response.status_code == 200
    assert "mount must be letters, digits" in response.content.decode()
    assert not Channel.objects.filter(slug="owned").exists()


@pytest.mark.django_db
def test_two_channels_cannot_stream_on_one_harbor_port(api, operator_a, operator_b, studio_a, studio_b):
    factories.ChannelFactory(studio=studio_a, output_settings={"port": 8150})

    response = api(operator_b).post("/api/v1/channels/", {
        "studio": studio_b.pk, "name": "Squatter", "slug": "squatter", "output_settings": {"port": 8150}}, format="json")

    assert response.status_code == 400
    assert "already streams on this harbor port" in str(response.json()["error"])


def test_telnet_words_and_request_uris_carry_nothing_but_what_they_are_for():
    gateway = Gateway(closed_port())
    for words in (("queue.push", "/a.mp3\nshutdown"), ("queue.push x", "/a.mp3"), ("paused", "true\r\n"),
                  ("queue.push", "/a.mp3\u2028shutdown"), ()):
        with pytest.raises(ValueError):
            gateway.command(*words)
    for path in ("relative.mp3", "/media/a.mp3\nprocess:touch,/tmp/owned:x", "/media/a\x00.mp3"):
        with pytest.raises(Exception):
            request_uri(path, {"sk_asset": 1})
    with pytest.raises(TypeError):
        request_uri("/media/a.mp3", {"sk_title": '"#{process.read(\'id\')}"'})
    assert request_uri("/media/a.mp3", {"sk_item": 3, "liq_cue_in": 1.5}) == 'annotate:sk_item=3,liq_cue_in=1.5:/media/a.mp3'
    # an ordinary file name with spaces and accents still plays
    assert request_uri("/media/Émission du matin.mp3", {"sk_item": 3}).endswith(":/media/Émission du matin.mp3")
    # an air recording's file: the station's path only; output.file would expand strftime and $(metadata)
    for recorder, path in (("air_record_a", "relative.wav"), ("air_record_a", "/media/a b.wav"),
                           ("air_record_a", "/media/%H.wav"), ("air_record_a", "/media/$(title).wav"),
                           ("air_record_a", "/media/a.wav\nshutdown"), ("air_record_c", "/media/a.wav"),
                           ("queue.push", "/media/a.wav")):
        with pytest.raises(ValueError):
            gateway.record_air(recorder, from_position=1.0, until_position=2.0, path=Path(path))


@pytest.mark.slow
def test_the_engine_has_no_protocol_that_runs_a_command_even_for_a_request_the_validators_would_refuse(tmp_path):
    marker = tmp_path / "owned"
    tone = generate_tone(tmp_path / "tone.mp3", frequency=440, seconds=1)
    on_air, port = [], closed_port()
    script = render_script(output=output_clause("file", {"format": "wav", "bitrate": 128}, "mksafe(air)",
                                                file_path=tmp_path / "out.wav"),
                           telnet_port=port, filler_playlist=None)
    engine = LiquidsoapEngine(script=script, workdir=tmp_path / "engine", telnet_port=port,
                              on_air=lambda metadata, at: on_air.append(metadata), reads=(tmp_path,), writes=(tmp_path,))
    try:
        wait_until(engine.gateway.alive, timeout=30, message="the engine's telnet server")
        engine.gateway.set_next_at(0)  # the queue's gate open
        engine.gateway.command("queue.push", f"process:mp3,touch {marker}:")  # what Liquidsoap's stdlib would run
        engine.gateway.command("queue.push", request_uri(tone, {"sk_item": 7}))
        wait_until(lambda: any(m.get("sk_item") == "7" for m in on_air), timeout=30, message="the tone after it on air")
    finally:
        engine.stop()
    assert not marker.exists()


HOSTILE_TITLE = '"#{file.write(data="owned", "MARKER")}"\nprocess:touch,MARKER:x'


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_row_written_around_validation_fails_its_own_channel_and_the_others_stay_on_air(media_root, tmp_path):
    marker = tmp_path / "owned"
    with _channel_on_air(media_root) as (good, _url, _):
        filler_asset = good.fallback_playlist.items.get().asset
        MediaAsset.objects.filter(pk=filler_asset.pk).update(title=HOSTILE_TITLE.replace("MARKER", str(marker)))
        # Stopped until the one write that gives it the bad settings: else the agent may start it on the good ones first.
        bad = factories.ChannelFactory(studio=good.studio, node=good.node, status=Channel.Status.STOPPED)
        Channel.objects.filter(pk=bad.pk).update(output_settings={"port": "x", "mount": "#{process.read('id')}"},
                                                 status=Channel.Status.STARTING)

        failed = wait_until(lambda: (c := Channel.objects.get(pk=bad.pk)).status == Channel.Status.ERROR and c,
                            timeout=20, message="the bad channel in error")
        # the good channel plays on: its filler again, now under the hostile title, taken from the database
        Channel.objects.filter(pk=good.pk).update(skip_requested_at=timezone.now())
        # the entry on air when the skip lands may already carry the new title and ends `skipped`; the next is the filler
        aired = wait_until(lambda: AsRunEntry.objects.filter(channel=good, title=HOSTILE_TITLE.replace("MARKER", str(marker)),
                                                             result=AsRunEntry.Result.FALLBACK).first(),
                           timeout=20, message="the filler on air under its new title")

    assert "port must be a whole number" in failed.error_message and "mount must be" in failed.error_message
    assert Alert.objects.filter(code="channel_settings_invalid", subject=bad.name).exists()
    assert aired.asset_id == filler_asset.pk
    assert not marker.exists()
    filler_list = (media_root.parent / "node-cache" / good.node.name / "engines" / f"channel-{good.pk}" / "filler.m3u")
    assert "owned" not in filler_list.read_text() and filler_list.read_text().count("\n") == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_file_output_is_written_where_the_station_names_it(media_root):
    studio = factories.StudioFactory()
    node = factories.NodeFactory(name="host-1")
    filler = factories.PlaylistFactory(studio=studio, name="Filler")
    PlaylistItem.objects.create(playlist=filler, asset=_tone(studio, media_root, 440, 30))
    channel = factories.ChannelFactory(studio=studio, node=node, status=Channel.Status.STARTING, fallback_playlist=filler,
                                       output_type=Channel.Output.FILE, output_settings={"format": "wav"})
    agent = spawn_manage("run_node", "--name", "host-1", env=database_env(PLAYOUT_TELNET_BASE_PORT=closed_port() - channel.pk))
    expected = file_output_path(Path(media_root.parent / "node-cache" / "host-1"), channel.pk, "wav")
    try:
        wait_until(lambda: expected.exists() and expected.stat().st_size > 100_000, timeout=30,
                   message="the engine writing its file output")
    finally:
        stop(agent)

    assert expected == media_root.parent / "node-cache" / "host-1" / "outputs" / f"channel-{channel.pk}.wav"
    assert expected.read_bytes()[:4] == b"RIFF"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("playlist, content_type", [
    ("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{segment}\n#EXT-X-ENDLIST\n", "application/vnd.apple.mpegurl"),
    ("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{segment}\n#EXT-X-ENDLIST\n", "audio/mpeg"),  # lying about it
    ("<?xml version='1.0'?>\n<MPD><Period><BaseURL>{segment}</BaseURL></Period></MPD>\n", "application/dash+xml"),
])
def test_a_webstream_that_is_a_playlist_of_internal_addresses_fetches_none_of_them(settings, media_root, tmp_path, playlist,
                                                                                   content_type):
    from station.tests.security.servers import Answer, HostileServer

    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.2/32"]  # one internal host the station uses, not its neighbours
    allowed, internal = HostileServer("127.0.0.2"), HostileServer("127.0.0.3")
    try:
        tone = (media_root / "private.mp3")
        segment = internal.serve("/private.mp3", Answer(body=_tone_bytes(tone), headers={"Content-Type": "audio/mpeg"}))
        url = allowed.serve("/live", Answer(body=playlist.format(segment=segment).encode(),
                                            headers={"Content-Type": content_type}))
        with _channel_on_air(media_root) as (channel, _url, _):
            relay = factories.PlaylistFactory(studio=channel.studio, name="Relay")
            PlaylistItem.objects.create(playlist=relay, webstream_url=url, webstream_seconds=3)
            slot = timezone.now() + timedelta(seconds=3)
            factories.ShowInstanceFactory(show__channel=channel, show__playlist=relay, start_at=slot,
                                          end_at=slot + timedelta(seconds=3))
            alert = wait_until(lambda: Alert.objects.filter(code="webstream_unreachable").first(), timeout=20,
                               message="the refused webstream reported")
            time.sleep(2)
    finally:
        allowed.close()
        internal.close()

    assert internal.hits == []
    assert "playlist" in alert.message and "filler will cover it" in alert.message
    assert not AsRunEntry.objects.filter(channel=channel, result=AsRunEntry.Result.PLAYED).exists()


def _tone_bytes(path: Path) -> bytes:
    from ingest.media import generate_tone

    return generate_tone(path, frequency=440, seconds=3).read_bytes()
