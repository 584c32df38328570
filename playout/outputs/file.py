"""File: the engine writes the stream to a file on its node; staff choose its format, the station its name."""

from pathlib import Path

from playout.outputs.base import BITRATE, Output, Setting, choice, mp3_encoder

ENCODERS = {"mp3": mp3_encoder, "wav": lambda _bitrate: "%wav(stereo, samplesize=16)"}
FILE_FORMATS = tuple(ENCODERS)


def file_output_path(node_dir: Path, channel_id: int, file_format: str) -> Path:
    """Return where a channel's file output is written on its node: named by the station, never by staff."""
    return node_dir / "outputs" / f"channel-{int(channel_id)}.{choice(FILE_FORMATS)(file_format)}"


class FileOutput(Output):
    name = "file"
    schema = {"format": Setting(choice(FILE_FORMATS), "mp3"), "bitrate": BITRATE}

    def file_path(self, node_dir, channel_id, settings):
        return file_output_path(node_dir, channel_id, settings["format"])

    def liquidsoap(self, settings, source, liq_string, *, file_path=None):
        encoder = ENCODERS[settings["format"]](settings["bitrate"])
        # flush: each frame reaches the file (or the pipe a recorder reads) as it is played.
        return f"output.file(flush=true, {encoder}, {liq_string(file_path)}, {source})"


OUTPUT = FileOutput()
