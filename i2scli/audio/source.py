"""An audio file or stream open for block reading (`Input`), and the channels map that shapes it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import soundfile as sf

from i2scli.audio.busformat import BusFormat
from i2scli.audio.rawpcm import RawFormat
from i2scli.audio.sndfile import SF_ERRORS, sf_message
from i2scli.errors import AudioError, worded


def parse_channels_map(text: str) -> list[int]:
    """``"0,1"`` -> ``[0, 1]``: one or two 0-based file channel indexes. AudioError otherwise."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise AudioError(f"invalid channels map {text!r} (use 0-based channel numbers, e.g. 0,1)") from None
    return _check_map(values, None)


def _check_map(channels_map: list[int], file_channels: int | None) -> list[int]:
    if not 1 <= len(channels_map) <= 2:
        raise AudioError(f"a channels map has 1 or 2 entries (e.g. 0,1), not {len(channels_map)}")
    for c in channels_map:
        if c < 0 or (file_channels is not None and c >= file_channels):
            what = f"the file has channels 0..{file_channels - 1}" if file_channels else "channels count from 0"
            raise AudioError(f"channels map entry {c} is out of range: {what}")
    return list(channels_map)


def is_integer_subtype(subtype: str) -> bool:
    """Whether libsndfile decodes this subtype from integers (read exactly as int32)."""
    return subtype.startswith(("PCM_", "ALAC_", "DWVW_", "DPCM_")) or subtype in ("ULAW", "ALAW")


class Input:
    """An audio file open for block reading. Use `open_input` to make one.

    Attributes: `rate` (Hz), `channels` (1 or 2: after the channels map), `file_channels`,
    `frames` (in the file; None for a stream read as it comes: a pipe, a FIFO), `subtype`
    (e.g. ``PCM_24``), `format` (e.g. ``WAV``), `name`, `streaming`.
    """

    def __init__(self, sfile: sf.SoundFile, name: str, channels_map: list[int] | None,
                 spool: BinaryIO | None = None, reader: StreamReader | None = None,
                 raw: RawFormat | None = None):
        self._file = sfile
        self._spool = spool
        self._reader = reader
        self.name = name
        self.rate: int = sfile.samplerate
        self.file_channels: int = sfile.channels
        self.frames: int | None = None if reader is not None else sfile.frames
        self.subtype: str = raw.subtype_name if raw is not None else sfile.subtype
        self.format: str = sfile.format
        self._shift = raw.shift if raw is not None else 0
        if channels_map is not None:
            self.channels_map: list[int] | None = _check_map(list(channels_map), self.file_channels)
        elif self.file_channels > 2:
            raise worded(AudioError, f"{name} has {self.file_channels} channels; choose one or two with ",
                         ("channels_map", None), " (e.g. 0,1)")
        else:
            self.channels_map = None
        self.channels: int = len(self.channels_map) if self.channels_map else self.file_channels

    def backlog(self) -> tuple[int, int, float | None]:
        """A stream's frames read from the source and not yet taken, how many it may hold, and
        when the newest of them came (time.monotonic)."""
        r = self._reader
        if r is None:
            return 0, 0, None
        with r.queue.mutex:
            return sum(len(b) for b in r.queue.queue), r.queue.maxsize * r.block, r.arrived

    @property
    def streaming(self) -> bool:
        """Read as it comes (a pipe, a FIFO): its length is unknown until it ends."""
        return self._reader is not None

    @property
    def integer(self) -> bool:
        """True for integer PCM files (read exactly), False for float and lossy ones."""
        return is_integer_subtype(self.subtype)

    @property
    def seconds(self) -> float | None:
        return None if self.frames is None else self.frames / self.rate

    def describe(self) -> str:
        """E.g. ``song.flac: 44100 Hz PCM_24 stereo FLAC, 12.50 s``."""
        ch = {1: "mono", 2: "stereo"}.get(self.file_channels, f"{self.file_channels}-channel")
        length = "a stream" if self.frames is None else f"{self.seconds:.2f} s"
        text = f"{self.name}: {self.rate} Hz {self.subtype} {ch} {self.format}, {length}"
        if self.channels_map:
            text += f" (channels {','.join(map(str, self.channels_map))})"
        return text

    def bus_frames(self, bus: BusFormat, start_frame: int = 0, max_frames: int | None = None) -> int | None:
        """How many wire frames `play_blocks` yields for these arguments (±1 when resampling);
        None for a stream of unknown length."""
        if self.frames is None and max_frames is None:
            return None
        n = max_frames if self.frames is None else max(0, self.frames - start_frame)
        if max_frames is not None:
            n = min(n, max_frames)
        return n if bus.rate == self.rate else round(n * bus.rate / self.rate)

    def _blocks(self, start: int, count: int | None, block_frames: int, dtype: str) -> Iterator[np.ndarray]:
        """Up to `count` frames (None: all) from `start`, mapped to `self.channels`, as (n,
        channels) arrays. A stream yields an empty block whenever nothing has arrived for a
        moment, so that the caller can tend its link while a pipe is slow."""
        if self._reader is not None:
            yield from self._stream_blocks(start, count, dtype)
            return
        if count is None:
            count = max(0, self.frames - start)
        if count <= 0:
            return
        try:
            self._file.seek(start)
            while count > 0:
                data = self._file.read(min(block_frames, count), dtype=dtype, always_2d=True)
                if len(data) == 0:
                    return
                if self._shift:  # aplay's S24_LE: 24 bits in the low bytes of 32, read as PCM_32
                    data <<= self._shift
                count -= len(data)
                yield data[:, self.channels_map] if self.channels_map else data
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(f"{self.name}: cannot read audio: {sf_message(e)}") from None

    def _stream_blocks(self, start: int, count: int | None, dtype: str) -> Iterator[np.ndarray]:
        reader = self._reader
        if start:
            raise ValueError(f"{self.name} is a stream: it plays from its start")
        if dtype != reader.dtype:
            raise ValueError(f"{self.name} is read as {reader.dtype}, not {dtype}")
        idle = np.zeros((0, self.channels), dtype)
        reader.start()
        while count is None or count > 0:
            data = reader.get()
            if data is None:  # nothing yet
                yield idle
                continue
            if len(data) == 0:  # the end
                if reader.error is not None:
                    raise reader.error
                return
            if count is not None:
                data = data[:count]
                count -= len(data)
            yield data[:, self.channels_map] if self.channels_map else data

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()  # the file is closed by its reader, once no read is under way
        else:
            self._file.close()
        if self._spool is not None:
            self._spool.close()

    def __enter__(self) -> Input:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: A stream's reader hands over blocks of this many milliseconds of audio (a pipe's first
#: sample is not held back for more), and holds at most STREAM_QUEUE_S seconds read ahead.
STREAM_BLOCK_MS = 20
STREAM_QUEUE_S = 1.0


class StreamReader:
    """Reads a stream (a pipe, a FIFO) through libsndfile in a thread of its own, a block at a
    time, into a bounded queue: memory stays flat whatever the stream's length, and the
    command keeps tending its link (and hears signals) while the source is slow. Owns the
    SoundFile and closes it (and `closers`) when the stream ends or the reader is closed."""

    def __init__(self, sfile: sf.SoundFile, name: str, dtype: str, shift: int = 0, closers=()):
        import queue

        self.sfile, self.name, self.dtype, self.shift = sfile, name, dtype, shift
        self.channels = sfile.channels
        self.block = max(64, sfile.samplerate * STREAM_BLOCK_MS // 1000)
        self.queue: queue.Queue = queue.Queue(maxsize=max(2, int(STREAM_QUEUE_S * 1000 / STREAM_BLOCK_MS)))
        self.error: AudioError | None = None
        self.arrived: float | None = None
        self._closers = list(closers)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="i2s-input", daemon=True)
                self._thread.start()

    def get(self, wait: float = 0.02) -> np.ndarray | None:
        """The next block; an empty one at the end; None when nothing came within `wait` s."""
        import queue

        try:
            return self.queue.get(timeout=wait)
        except queue.Empty:
            return None

    def _put(self, item: np.ndarray) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self.sfile.read(self.block, dtype=self.dtype, always_2d=True)
                if len(data) == 0:
                    break
                if self.shift:
                    data <<= self.shift
                self.arrived = time.monotonic()  # when the newest block came (live: the reserve's phase)
                if not self._put(data):
                    break
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            self.error = AudioError(f"{self.name}: cannot read audio: {sf_message(e)}")
        finally:
            self._release()
            self._put(np.zeros((0, self.channels), self.dtype))

    def _release(self) -> None:
        try:
            self.sfile.close()
        except SF_ERRORS:
            pass
        for c in self._closers:
            try:
                c()
            except OSError:
                pass
        self._closers = []

    def close(self) -> None:
        """Stop reading. A read still waiting on the source ends on its own (a daemon thread:
        it never holds the command up)."""
        import queue

        with self._lock:
            self._stop.set()
            running = self._thread is not None
        if not running:
            self._release()
            return
        try:
            while True:
                self.queue.get_nowait()
        except queue.Empty:
            pass
