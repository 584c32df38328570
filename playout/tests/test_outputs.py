"""Output backends: the engine's output section, pinned byte for byte, and what hardware outputs mean elsewhere."""

from urllib.parse import quote

import pytest
from django.utils import timezone

from playout.agent import ChannelSupervisor
from playout.models import Channel
from playout.outputs import OUTPUTS
from station.models import Node
from station.tests.factories import ChannelFactory, NodeFactory

pytestmark = pytest.mark.django_db

# What the scripts ended with before outputs became backends: {dir} is the node's outputs directory, percent-encoded.
PINNED = {
    "harbor": ({"port": 8123, "mount": "air-1.x", "bitrate": 192},
               'output.harbor(%mp3(bitrate=192), port=8123, mount=url.decode("air-1.x"), mksafe(air))\n'),
    "icecast": ({"host": "93.184.216.34", "port": 8001, "password": 'p a"#{1}\\ss', "mount": "live"},
                'output.icecast(%mp3(bitrate=128), host=url.decode("93.184.216.34"), port=8001, '
                'password=url.decode("p%20a%22%23%7B1%7D%5Css"), mount=url.decode("live"), mksafe(air))\n'),
    "file mp3": ({"format": "mp3", "bitrate": 320},
                 'output.file(flush=true, %mp3(bitrate=320), url.decode("{dir}%2Fchannel-{pk}.mp3"), mksafe(air))\n'),
    "file wav": ({"format": "wav"},
                 'output.file(flush=true, %wav(stereo, samplesize=16), url.decode("{dir}%2Fchannel-{pk}.wav"), mksafe(air))\n'),
    "hls": ({"bitrate": 96},
            'output.file.hls(playlist=url.decode("live.m3u8"), segment_duration=2.0, segments=5, segments_overhead=5, '
            'persist_at=url.decode("state.json"), perm=0o644, perms=0o755, url.decode("{dir}%2Fhls%2Fchannel-{pk}"), '
            '[(url.decode("aac"), '
            '%ffmpeg(format="mpegts", %audio(codec="aac", b="96k", ar=44100, channels=2)))], mksafe(air))\n'),
}


@pytest.fixture
def supervisor(settings, tmp_path):
    settings.PLAYOUT_HARBOR_PORTS = "8100-8999"
    settings.PLAYOUT_CACHE_ROOT = tmp_path / "node cache"
    return ChannelSupervisor(node=NodeFactory(name="host #1"))


@pytest.mark.parametrize("case", PINNED)
def test_each_output_ends_the_engine_script_as_it_did_before_backends(supervisor, case):
    output_settings, pinned = PINNED[case]
    channel = ChannelFactory(node=supervisor.node, output_type=case.split()[0], output_settings=output_settings)

    script, writes = supervisor.launcher.script(channel)

    outputs_dir = supervisor.node_dir / "outputs"
    expected = pinned.replace("{dir}", quote(str(outputs_dir), safe="")).replace("{pk}", str(channel.pk))
    assert script.rsplit("\n\n", 1)[1] == expected  # its last paragraph
    if case.startswith("file"):
        assert writes == (outputs_dir, outputs_dir / f"channel-{channel.pk}.{output_settings['format']}")
        assert outputs_dir.is_dir()
    elif case == "hls":
        hls = outputs_dir / "hls" / f"channel-{channel.pk}"
        assert writes == (hls, hls / "live.m3u8") and hls.is_dir()
    else:
        assert writes == ()


def test_the_agent_starts_no_engine_for_a_hardware_output(supervisor):
    ChannelFactory(node=supervisor.node, status=Channel.Status.STARTING, output_type=Channel.Output.DECKLINK,
                   output_settings={})

    supervisor.rearm(timezone.now())

    assert supervisor.channels == {}


@pytest.mark.parametrize("output_type, hardware, capability", [
    ("harbor", False, Node.Capability.PLAYOUT),
    ("icecast", False, Node.Capability.PLAYOUT),
    ("file", False, Node.Capability.PLAYOUT),
    ("decklink", True, Node.Capability.DECKLINK),
    ("written-around-the-model", False, Node.Capability.PLAYOUT),  # its agent puts it in error
])
def test_only_hardware_outputs_stay_on_their_host_and_need_its_capability(output_type, hardware, capability):
    channel = Channel(output_type=output_type)

    assert (channel.is_hardware, channel.required_capability) == (hardware, capability)


def test_every_output_the_model_offers_has_a_backend_and_no_other():
    assert set(OUTPUTS) == set(Channel.Output.values)
