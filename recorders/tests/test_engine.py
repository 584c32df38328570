"""ffmpeg runs as the agent drives them: cut at the window's end, their files finished."""

import array
import math
import struct
import time

import pytest

from recorders.engine import SAMPLE_RATE, CaptureRun, WindowFile, recorded_pieces
from recorders.sources import parse_source
from recorders.tests.audio import decoded, sound_spans

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


def _tone_pcm(seconds: int) -> bytes:
    """``seconds`` of a 440 Hz tone as the window's PCM (16-bit stereo, 44.1 kHz)."""
    wave = array.array("h", (int(12000 * math.sin(2 * math.pi * 440 * n / SAMPLE_RATE)) for n in range(SAMPLE_RATE)))
    return array.array("h", (value for value in wave for _channel in (0, 1))).tobytes() * seconds


def test_a_window_taken_over_is_one_file_when_it_ends_the_earlier_audio_at_its_place(tmp_path):
    window = (time.time(), time.time() + 4)
    first_agent = WindowFile(directory=tmp_path, output_format="mp3", segment_seconds=600, window=window)
    first_agent.write(0, _tone_pcm(1))
    first_agent.finish(to_window_end=False)  # its agent stopped after a second

    taking_over = WindowFile(directory=tmp_path, output_format="mp3", segment_seconds=600, window=window,
                             earlier=recorded_pieces(tmp_path))
    taking_over.write(2 * SAMPLE_RATE, _tone_pcm(2))  # its source back after a second's gap
    taking_over.finish()

    [piece] = recorded_pieces(tmp_path)  # nothing to join: the window's asset is this file, ready at once
    assert (piece.start, piece.end) == (0, 4 * SAMPLE_RATE) and piece.gaps == [(SAMPLE_RATE, 2 * SAMPLE_RATE)]
    heard = sound_spans(decoded(piece.files[0]))
    assert [(round(start, 2), round(end, 2)) for start, end in heard] == [(0, 1), (2, 4)]
