"""ffmpeg runs as the agent drives them: cut at the window's end, their files finished."""

import struct
import time

import pytest

from recorders.engine import CaptureRun, WindowFile
from recorders.sources import parse_source

pytestmark = pytest.mark.slow


def _recorded_and_stopped(tmp_path, output_format: str):
    file = WindowFile(directory=tmp_path, output_format=output_format, segment_seconds=600,
                      window=(time.time(), time.time() + 30))
    run = CaptureRun(source=parse_source("tone:440"), file=file)
    time.sleep(2)
    file.cut(time.time())  # at the window's end, on the agent's loop
    run.stop()  # then off the loop: waits for the last samples
    file.finish()  # and for ffmpeg to finish the file
    [part] = sorted(tmp_path.glob(f"part-*.{file.extension}"))
    return part.read_bytes()


def test_a_stopped_wav_recording_has_its_sizes_written(tmp_path):
    wav = _recorded_and_stopped(tmp_path, "wav")

    riff_size = struct.unpack("<I", wav[4:8])[0]
    assert riff_size == len(wav) - 8  # not 0xFFFFFFFF, the size of a file ffmpeg never finished
    assert len(wav) > 44100 * 4  # over a second of audio


def test_a_stopped_mp3_recording_has_its_frame_count_written(tmp_path):
    mp3 = _recorded_and_stopped(tmp_path, "mp3")

    tag = max(mp3.find(b"Info"), mp3.find(b"Xing"))
    assert tag != -1
    flags, frames = struct.unpack(">II", mp3[tag + 4:tag + 12])
    assert flags & 1 and frames > 30  # the header ffmpeg writes last says how many frames there are
