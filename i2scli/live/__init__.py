"""Live sources: a source clocked on its own (a microphone, a sound server) matched to the
board's I2S clock by adaptive resampling (docs/pipes.md, *Live sources*)."""

from __future__ import annotations

import os
import stat
import sys

from i2scli.live.clockmatch import DriftLoop, LiveParams
from i2scli.live.match import LiveMatch
from i2scli.live.resample import Resampler
from i2scli.live.sink import SinkMatch

__all__ = ["DriftLoop", "LiveMatch", "LiveParams", "Resampler", "SinkMatch", "output_is_stream", "sink_kind",
           "source_kind"]


def source_kind(path: str) -> str:
    """What a stream is, for the settings line: "standard input, a pipe", "a FIFO", ..."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode if path == "-" else os.stat(path).st_mode
    except (OSError, ValueError, AttributeError):
        return "standard input" if path == "-" else "a stream"
    kind = ("a pipe" if path == "-" else "a FIFO") if stat.S_ISFIFO(mode) else \
        "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) else "a stream"
    return f"standard input, {kind}" if path == "-" else kind


def sink_kind(fd: int, path: str) -> str:
    """What a recording's output stream is, for the settings line: "standard output, a pipe", ..."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return "a stream"
    kind = ("a pipe" if path == "-" else "a FIFO") if stat.S_ISFIFO(mode) else \
        "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) else "a stream"
    return f"standard output, {kind}" if path == "-" else kind


def output_is_stream(path: str) -> bool:
    """A recording's output that a consumer reads as it comes (a pipe, a FIFO, a socket, a
    terminal): never a file on disk, which is never resampled."""
    try:
        mode = os.fstat(sys.stdout.fileno()).st_mode if path == "-" else os.stat(path).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISBLK(mode)
