"""Audio files in blocks, and exact conversion between file samples and the I2S wire format.

This is the only module that touches audio files. Everything streams in blocks, so memory
stays flat whatever the file length.

The wire format (what the board's I2S buffers hold) is described by a `BusFormat`:
little-endian signed samples of 16 or 32 bits, frames interleaved left before right.
24-bit audio travels left-justified in 32-bit slots (low byte 0). A MONO RX bus keeps
the left slot; a MONO TX bus sends each sample on both slots.

Playing (file -> wire), see `play_blocks`:

* Integer PCM files (8/16/24/32-bit, signed or unsigned, WAV/FLAC/...) are read as
  left-justified int32 (libsndfile scales every integer depth to the top of 32 bits:
  8-bit unsigned ``u`` becomes ``(u - 128) << 24``, 16-bit ``s`` becomes ``s << 16``,
  24-bit ``s`` becomes ``s << 8``).

  - to a 32-bit bus: that int32 as is (24-bit audio lands left-justified, low byte 0);
  - to a 16-bit bus: the top 16 bits (``x >> 16``, an arithmetic shift). Exact for 8- and
    16-bit files; for deeper files the low bits are truncated (rounded towards -inf),
    not dithered.

* Float files (FLOAT/DOUBLE subtypes) and lossy codecs (Vorbis, Opus, MP3...) are read
  as float64, scaled by 2**31 (32-bit bus) or 2**15 (16-bit bus), rounded half to even
  and clipped to the signed range; clipped samples are counted in `ConvertStats.clipped`.
  Non-finite samples (NaN, +inf, -inf) play as silence (0), counted in
  `ConvertStats.nonfinite`: they are not audio, and full scale would be a loud click.
* With a gain (``gain_db != 0``) or a resampler (bus rate != file rate), integer files
  take the float path too (``x / 2**31``, exact), then gain, then the same quantization.
* Channels: a mono file on a stereo bus is duplicated on both slots; a stereo file on a
  mono bus keeps its left channel (like MONO RX keeps the left slot). Files with more than
  two channels need a channels map (``--channels-map 0,1``), which selects and reorders
  file channels; a map can also pick the right channel of a stereo file (``1``).

Recording (wire -> file), see `open_output`: the file keeps the top bits of each slot,
exactly: a 32-bit bus written as PCM_24 keeps the top 24 bits (a 24-bit microphone in a
32-bit slot loses nothing), as PCM_16 the top 16; a 16-bit bus written as PCM_24/PCM_32 is
shifted up losslessly.
"""

from __future__ import annotations

import errno
import math
import os
import stat
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO

import numpy as np
import soundfile as sf

__all__ = [
    "AudioError",
    "BusFormat",
    "ConvertStats",
    "Input",
    "Levels",
    "Output",
    "OUTPUT_FORMATS",
    "check_output_path",
    "check_writable",
    "to_dbfs",
    "open_input",
    "open_output",
    "parse_channels_map",
    "play_blocks",
    "replacing",
    "tone_blocks",
    "wire_to_array",
]

#: File extensions `open_output` accepts, and the libsndfile major format each one writes.
OUTPUT_FORMATS: dict[str, str] = {".wav": "WAV", ".flac": "FLAC", ".rf64": "RF64", ".w64": "W64"}
#: Sample formats `open_output` writes.
OUTPUT_SUBTYPES = ("PCM_16", "PCM_24", "PCM_32")

_SF_ERRORS = (sf.LibsndfileError, RuntimeError, OSError)
_SFC_UPDATE_HEADER_NOW = 0x1060  # sndfile.h
_SPOOL_CHUNK = 1 << 20


from i2scli.busformat import BusFormat  # noqa: E402,F401  (re-exported: audio.BusFormat)
from i2scli.errors import AudioError  # noqa: E402,F401  (re-exported: audio.AudioError)

# --------------------------------------------------------------------------------------------
# The bus format: i2scli/busformat.py (numpy-free, for cli/ui.py and the commands that do not stream)


def wire_to_array(data: bytes | bytearray | memoryview, bus: BusFormat) -> np.ndarray:
    """Wire bytes as an array of shape (frames, channels) with dtype `bus.dtype` (a read-only view).

    Raises ValueError if `data` is not a whole number of frames.
    """
    if len(data) % bus.frame_bytes:
        raise ValueError(f"{len(data)} bytes is not a whole number of {bus.frame_bytes}-byte frames")
    return np.frombuffer(data, bus.dtype).reshape(-1, bus.channels)


def slot_keeper(bus: BusFormat, slot: str | None, shift: int = 0):
    """What `record --slot/--shift` keeps of each block of bus samples (frames, channels):
    one slot (a mono microphone on `slot` of a stereo bus) and/or every sample shifted
    `shift` bits as MicroPython's I2S.shift does it (left: the high bits fall off; right:
    arithmetic, the sign kept)."""
    col = {"left": 0, "right": 1, None: None}[slot]

    def keep(x: np.ndarray) -> np.ndarray:
        if col is not None:
            x = x[:, col:col + 1]
        if shift > 0:
            mask = (1 << bus.bits) - 1
            wide = (x.astype(np.int64) << shift) & mask
            x = np.where(wide >= 1 << (bus.bits - 1), wide - (1 << bus.bits), wide).astype(bus.dtype)
        elif shift < 0:
            x = x >> -shift
        return np.ascontiguousarray(x)

    return keep


def to_dbfs(value: float, full_scale: float) -> float:
    """20·log10(value / full_scale); -inf for 0."""
    return 20 * math.log10(value / full_scale) if value > 0 else -math.inf


def _json_db(value: float) -> float | None:
    """dB rounded for reports; -inf (silence) becomes None."""
    return None if value == -math.inf else round(value, 2)


# --------------------------------------------------------------------------------------------
# Input


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


def _is_integer_subtype(subtype: str) -> bool:
    """Whether libsndfile decodes this subtype from integers (read exactly as int32)."""
    return subtype.startswith(("PCM_", "ALAC_", "DWVW_", "DPCM_")) or subtype in ("ULAW", "ALAW")


class Input:
    """An audio file open for block reading. Use `open_input` to make one.

    Attributes: `rate` (Hz), `channels` (1 or 2: after the channels map), `file_channels`,
    `frames` (in the file; None for a stream read as it comes: a pipe, a FIFO), `subtype`
    (e.g. ``PCM_24``), `format` (e.g. ``WAV``), `name`, `streaming`.
    """

    def __init__(self, sfile: sf.SoundFile, name: str, channels_map: list[int] | None,
                 spool: BinaryIO | None = None, reader: _StreamReader | None = None,
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
            raise AudioError(
                f"{name} has {self.file_channels} channels; choose one or two with --channels-map (e.g. 0,1)")
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
        return _is_integer_subtype(self.subtype)

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
            raise AudioError(f"{self.name}: cannot read audio: {_sf_message(e)}") from None

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


class _StreamReader:
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
            self.error = AudioError(f"{self.name}: cannot read audio: {_sf_message(e)}")
        finally:
            self._release()
            self._put(np.zeros((0, self.channels), self.dtype))

    def _release(self) -> None:
        try:
            self.sfile.close()
        except _SF_ERRORS:
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


def _sf_message(e: BaseException) -> str:
    text = getattr(e, "error_string", None) or (e.strerror if isinstance(e, OSError) and e.strerror else str(e))
    return " ".join(str(text).split()).rstrip(".")


#: A non-seekable input (stdin, a FIFO, a device) is copied to a temporary file before it plays
#: (most formats need seeking). Its first SPOOL_SNIFF bytes must open as audio, and it must end
#: within SPOOL_MAX bytes (the largest WAV): an endless source such as /dev/zero is refused, not
#: copied until the disk is full.
SPOOL_SNIFF = 16 << 20
SPOOL_MAX = 4 << 30


def _size_words(n: int) -> str:
    return f"{n >> 30} GiB" if n >= 1 << 30 else f"{n >> 20} MiB" if n >= 1 << 20 else f"{n} bytes"


def _spool_stdin(stream: BinaryIO, name: str = "standard input", head: bytes = b"") -> BinaryIO:
    """Copy a non-seekable stream (stdin, a FIFO, a device) named `name`, after the `head`
    already read from it, into an anonymous temporary file, in chunks, within the bounds
    above. AudioError naming it otherwise."""
    try:  # the descriptor itself where there is one: no buffer's lock held while a read waits
        fd = stream.fileno()
        read = lambda n: os.read(fd, n)  # noqa: E731
    except (OSError, AttributeError, ValueError):
        read = stream.read
    spool = tempfile.TemporaryFile(prefix="i2s-stdin-")
    total, sniffed = 0, False
    try:
        first = True
        while True:
            if first and head:
                chunk, first = head, False
            else:
                try:
                    chunk = read(_SPOOL_CHUNK)
                except OSError as e:
                    raise AudioError(f"{name}: cannot read: {_sf_message(e)}") from None
            if not chunk:
                break
            try:
                spool.write(chunk)
            except OSError as e:
                raise AudioError(f"{name}: cannot keep a copy in {tempfile.gettempdir()} to play it from "
                                 f"({_sf_message(e)}): give a regular file, or set TMPDIR") from None
            total += len(chunk)
            if not sniffed and total >= SPOOL_SNIFF:
                sniffed = True
                _check_head(spool, name)
            if total > SPOOL_MAX:
                raise AudioError(f"{name}: more than {_size_words(SPOOL_MAX)} and not ended: a pipe, FIFO or "
                                 f"device in this format is read to its end before it plays; give a regular "
                                 f"file, or WAV or raw PCM, which play as they come")
        spool.seek(0)
    except BaseException:
        try:
            spool.close()
        except OSError:  # what was still buffered cannot be written either: said above
            pass
        raise
    return spool


def _check_head(spool: BinaryIO, name: str) -> None:
    """The start of a spooled input opens as audio (libsndfile), or AudioError: a source that
    never ends and is not audio (/dev/zero, /dev/urandom) is refused after its first bytes."""
    try:
        spool.flush()
        spool.seek(0)
        try:
            sf.SoundFile(spool).close()
        except _SF_ERRORS as e:
            raise AudioError(f"{name}: not a readable audio file (its first {_size_words(SPOOL_SNIFF)} are "
                             f"not audio: {_sf_message(e)})") from None
    finally:
        spool.seek(0, os.SEEK_END)


def _stdin() -> BinaryIO:
    if sys.stdin is None:  # started with stdin closed (`i2s play - <&-`)
        raise AudioError("standard input is closed: nothing to play")
    return sys.stdin.buffer


# --------------------------------------------------------------------------------------------
# Raw PCM (no header): sox's -t raw -r -c -b -e --endian, and aplay's -f


@dataclass(frozen=True)
class RawFormat:
    """Headerless PCM: what libsndfile reads it as (`subtype`, `endian`), and `shift` for
    aplay's S24_LE (24 bits in the low three bytes of four: read as PCM_32, shifted up 8)."""

    rate: int
    channels: int
    subtype: str  # PCM_S8, PCM_U8, PCM_16, PCM_24, PCM_32, FLOAT, DOUBLE
    endian: str = "LITTLE"
    shift: int = 0

    @property
    def subtype_name(self) -> str:
        return "PCM_24" if self.shift else self.subtype


#: aplay's -f names: (libsndfile subtype, endianness, shift); and its shorthands
APLAY_FORMATS = {
    "S8": ("PCM_S8", "LITTLE", 0), "U8": ("PCM_U8", "LITTLE", 0),
    "S16_LE": ("PCM_16", "LITTLE", 0), "S16_BE": ("PCM_16", "BIG", 0),
    "S24_LE": ("PCM_32", "LITTLE", 8), "S24_BE": ("PCM_32", "BIG", 8),
    "S24_3LE": ("PCM_24", "LITTLE", 0), "S24_3BE": ("PCM_24", "BIG", 0),
    "S32_LE": ("PCM_32", "LITTLE", 0), "S32_BE": ("PCM_32", "BIG", 0),
    "FLOAT_LE": ("FLOAT", "LITTLE", 0), "FLOAT_BE": ("FLOAT", "BIG", 0),
    "FLOAT64_LE": ("DOUBLE", "LITTLE", 0), "FLOAT64_BE": ("DOUBLE", "BIG", 0),
}
APLAY_SHORTHANDS = {"cd": ("S16_LE", 44100, 2), "cdr": ("S16_BE", 44100, 2), "dat": ("S16_LE", 48000, 2)}
#: sox's -e names (and the short forms sox users write)
SOX_ENCODINGS = {"signed-integer": "signed", "signed": "signed", "unsigned-integer": "unsigned",
                 "unsigned": "unsigned", "floating-point": "float", "float": "float"}


def raw_format(rate: int | None, channels: int | None, bits: int | None, encoding: str | None = None,
               endian: str | None = None, aplay: str | None = None) -> RawFormat:
    """A RawFormat from sox's flags (-r -c -b -e --endian) or aplay's -f (with -r -c, or a
    shorthand: cd, cdr, dat). ValueError (a usage error) saying what is missing or wrong."""
    if aplay is not None:
        if bits is not None or encoding is not None or endian is not None:
            raise ValueError("-f names the sample format: leave out -b, -e and --endian")
        key = aplay if aplay in APLAY_SHORTHANDS else aplay.upper()
        if key in APLAY_SHORTHANDS:
            name, r, c = APLAY_SHORTHANDS[key]
            rate, channels = rate or r, channels or c
            key = name
        if key not in APLAY_FORMATS:
            raise ValueError(f"unknown -f format {aplay!r} (known: {', '.join([*APLAY_FORMATS, *APLAY_SHORTHANDS])})")
        subtype, order, shift = APLAY_FORMATS[key]
    else:
        if bits is None:
            raise ValueError("raw PCM has no header: give its sample size with -b BITS (or -f S16_LE)")
        enc = SOX_ENCODINGS.get((encoding or "signed-integer").lower())
        if enc is None:
            raise ValueError(f"unknown encoding -e {encoding!r} (signed-integer, unsigned-integer or floating-point)")
        table = {"signed": {8: "PCM_S8", 16: "PCM_16", 24: "PCM_24", 32: "PCM_32"},
                 "unsigned": {8: "PCM_U8"}, "float": {32: "FLOAT", 64: "DOUBLE"}}[enc]
        if bits not in table:
            sizes = ", ".join(map(str, table))
            raise ValueError(f"-e {encoding or 'signed-integer'} takes -b {sizes}, not {bits}")
        subtype, order, shift = table[bits], (endian or "little").upper(), 0
    missing = [flag for flag, v in (("-r RATE", rate), ("-c CHANNELS", channels)) if v is None]
    if missing:
        raise ValueError(f"raw PCM has no header: give {' and '.join(missing)}")
    return RawFormat(int(rate), int(channels), subtype, order, shift)


# --------------------------------------------------------------------------------------------
# Streams: a pipe or a FIFO plays as it comes


#: What libsndfile reads from a pipe, as it comes, recognised by the stream's first bytes:
#: WAV (RIFF/WAVE), Sony Wave64, AIFF, AU, Ogg (Vorbis, Opus). Anything else (FLAC, RF64, CAF,
#: MP3, ...: libsndfile needs to seek in those) is copied to a temporary file first.
def _streams(head: bytes) -> bool:
    return ((head[:4] == b"RIFF" and head[8:12] == b"WAVE") or head[:4] == b"riff"
            or (head[:4] == b"FORM" and head[8:11] == b"AIF") or head[:4] in (b".snd", b"OggS"))


_SNIFF_MAX = 1 << 20  # header bytes read before libsndfile takes over (a WAV's chunks before its data)


def _read_head(fd: int, name: str) -> bytes:
    """The stream's first bytes: enough to know its format and, for a WAV, its chunks up to
    the data chunk's header (at most about _SNIFF_MAX bytes). b"" when it is empty."""
    head = b""
    while len(head) < _SNIFF_MAX:
        if len(head) >= 12:
            if not (head[:4] == b"RIFF" and head[8:12] == b"WAVE"):
                return head
            at = 12
            while at + 8 <= len(head):
                if head[at:at + 4] == b"data":
                    return head
                size = struct.unpack_from("<I", head, at + 4)[0]
                at += 8 + size + (size & 1)
        try:
            chunk = os.read(fd, 4096)
        except OSError as e:
            raise AudioError(f"{name}: cannot read: {_sf_message(e)}") from None
        if not chunk:
            return head
        head += chunk
    return head


def _unknown_length(head: bytes) -> bytes:
    """A streaming WAV's header as libsndfile reads it to the end of the stream: a data size of
    0 (what some writers put when they cannot seek back) made 0xFFFFFFFF ("unknown", as sox and
    ffmpeg write it), which libsndfile reads until the data ends."""
    if not (head[:4] == b"RIFF" and head[8:12] == b"WAVE"):
        return head
    at = 12
    while at + 8 <= len(head):
        size = struct.unpack_from("<I", head, at + 4)[0]
        if head[at:at + 4] == b"data":
            if size == 0:
                head = head[:at + 4] + b"\xff\xff\xff\xff" + head[at + 8:]
                if struct.unpack_from("<I", head, 4)[0] == 0:
                    head = head[:4] + b"\xff\xff\xff\xff" + head[8:]
            return head
        at += 8 + size + (size & 1)
    return head


def _pump(src: int, dst: int, head: bytes) -> None:
    """`head`, then everything from `src`, into `dst` (a pipe libsndfile reads); `dst` closed
    at the end, or when its reader went away."""
    try:
        view = memoryview(head)
        while view:
            view = view[os.write(dst, view):]
        while True:
            chunk = os.read(src, 65536)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                view = view[os.write(dst, view):]
    except OSError:
        pass
    finally:
        os.close(dst)


def _open_stream(stream: BinaryIO, name: str, channels_map: list[int] | None, raw: RawFormat | None,
                 owned: BinaryIO | None = None) -> Input:
    """A non-seekable input (a pipe, a FIFO, a device) that plays as it comes: raw PCM, or a
    format libsndfile reads from a pipe (`_streams`); anything else is copied to a temporary
    file first, as before. `owned` is closed with the input."""
    closers = [owned.close] if owned is not None else []
    try:
        fd = stream.fileno()
    except (OSError, AttributeError, ValueError):
        fd = None
    try:
        if fd is None:  # a file-like object without a descriptor: copy it
            return _open_spooled(_spool_stdin(stream, name), name, channels_map, raw, closers)
        if raw is not None:
            try:
                sfile = sf.SoundFile(fd, "r", samplerate=raw.rate, channels=raw.channels, subtype=raw.subtype,
                                     endian=raw.endian, format="RAW", closefd=False)
            except _SF_ERRORS as e:
                raise AudioError(f"{name}: cannot read raw PCM: {_sf_message(e)}") from None
            dtype = "int32" if _is_integer_subtype(raw.subtype) else "float64"
            reader = _StreamReader(sfile, name, dtype, raw.shift, closers)
            closers = []
            return _checked_input(sfile, name, channels_map, None, reader, raw)
        head = _read_head(fd, name)
        if not head:
            raise AudioError(f"{name}: nothing to read (it was empty)")
        if not _streams(head):
            return _open_spooled(_spool_stdin(stream, name, head), name, channels_map, raw, closers)
        r, w = os.pipe()
        threading.Thread(target=_pump, args=(fd, w, _unknown_length(head)), name="i2s-pump", daemon=True).start()
        try:
            sfile = sf.SoundFile(r, closefd=False)
        except _SF_ERRORS as e:
            os.close(r)  # the pump sees its reader gone and stops
            raise AudioError(f"{name}: not a readable audio file ({_sf_message(e)})") from None
        dtype = "int32" if _is_integer_subtype(sfile.subtype) else "float64"
        reader = _StreamReader(sfile, name, dtype, 0, [lambda: os.close(r), *closers])
        closers = []
        return _checked_input(sfile, name, channels_map, None, reader, None)
    finally:
        for c in closers:
            c()


def _open_spooled(spool: BinaryIO, name: str, channels_map, raw, closers) -> Input:
    for c in closers:
        c()
    closers.clear()
    if spool.seek(0, os.SEEK_END) == 0:
        spool.close()
        raise AudioError(f"{name}: nothing to read (it was empty)")
    spool.seek(0)
    return _open_sf(spool, name, channels_map, raw, spool)


def _raw_kw(raw: RawFormat | None) -> dict:
    if raw is None:
        return {}
    return {"samplerate": raw.rate, "channels": raw.channels, "subtype": raw.subtype, "endian": raw.endian,
            "format": "RAW"}


def _open_sf(source, name: str, channels_map, raw: RawFormat | None, spool: BinaryIO | None) -> Input:
    try:
        sfile = sf.SoundFile(source, "r", **_raw_kw(raw))
    except _SF_ERRORS as e:
        if spool is not None:
            spool.close()
        what = "cannot read raw PCM" if raw is not None else "not a readable audio file"
        raise AudioError(f"{name}: {what} ({_sf_message(e)})") from None
    return _checked_input(sfile, name, channels_map, spool, None, raw)


def _checked_input(sfile, name, channels_map, spool, reader, raw) -> Input:
    try:
        inp = Input(sfile, name, channels_map, spool, reader, raw)
        if inp.frames is not None and inp.frames <= 0:
            raise AudioError(f"{name}: contains no audio (0 frames; truncated?)")
    except AudioError:
        if reader is not None:
            reader.close()
        else:
            sfile.close()
        if spool is not None:
            spool.close()
        raise
    return inp


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (OSError, AttributeError, ValueError):
        return False


def is_stream(path: str) -> bool:
    """Whether `path` (``-``: standard input) is a pipe, a FIFO or a device: read as it comes."""
    if path == "-":
        return sys.stdin is not None and not _seekable(sys.stdin.buffer)
    try:
        return not stat.S_ISREG(os.stat(path).st_mode) and not os.path.isdir(path)
    except OSError:
        return False


def open_input(path: str, channels_map: list[int] | None = None, *, stdin: BinaryIO | None = None,
               raw: RawFormat | None = None) -> Input:
    """Open an audio file that libsndfile reads (WAV/WAVEX/RF64/W64, FLAC, OGG, AIFF, MP3...),
    or raw PCM in the format `raw` (no header).

    ``-`` reads standard input (or `stdin` if given). A pipe, a FIFO or a device plays as it
    comes (`Input.streaming`, `frames` None): raw PCM, and WAV (whatever its header says of
    the length: 0 and 0xFFFFFFFF are read to the end of the stream), AIFF, AU, W64 and Ogg,
    which libsndfile reads without seeking; a block of about STREAM_BLOCK_MS is read at a
    time and at most STREAM_QUEUE_S is held. Other formats (FLAC, RF64, CAF, MP3) need
    seeking: such a stream is first copied to a temporary file in chunks (at most SPOOL_MAX
    bytes). `channels_map` selects and reorders file channels (1 or 2 0-based entries); files
    with more than two channels need one. Raises AudioError with a one-line message.
    """
    if path == "-":
        name = "standard input"
        stream = stdin if stdin is not None else _stdin()
        if not _seekable(stream):
            return _open_stream(stream, name, channels_map, raw)
        return _open_sf(stream, name, channels_map, raw, None)  # a regular file as stdin: as a file
    name = path
    if not os.path.exists(path):
        raise AudioError(f"{path}: no such file")
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: permission denied")
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO such as <(ffmpeg ...), a device: a stream
        try:
            fifo = open(path, "rb")
        except OSError as e:
            raise AudioError(f"{path}: cannot read: {_sf_message(e)}") from None
        return _open_stream(fifo, path, channels_map, raw, owned=fifo)
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: empty file, not audio")
    return _open_sf(path, name, channels_map, raw, None)


# --------------------------------------------------------------------------------------------
# File -> wire


@dataclass
class ConvertStats:
    """What `play_blocks` (or `tone_blocks`) produced; filled in as blocks are yielded.

    `frames`: wire frames yielded; `input_frames`: file frames read; `clipped`: wire samples
    clipped (float, gain or resampler paths; a mono source duplicated on both slots counts
    twice); `nonfinite`: file samples that were NaN or ±inf and played as silence (only
    the channels played count, each once); `peak`: largest magnitude per wire channel, in
    wire units; `bits`: the bus bits.
    """

    frames: int = 0
    input_frames: int = 0
    clipped: int = 0
    nonfinite: int = 0
    peak: list[int] = field(default_factory=list)
    bits: int = 0

    def _add(self, wire: np.ndarray, clipped: int, bits: int) -> None:
        self.bits = bits
        self.frames += len(wire)
        self.clipped += clipped
        if len(wire):
            block = np.abs(wire.astype(np.int64)).max(axis=0).tolist()
            self.peak = [max(a, b) for a, b in zip(self.peak, block)] if self.peak else block

    def peak_dbfs(self) -> list[float]:
        """Peak per channel in dBFS (-inf for silence)."""
        return [to_dbfs(p, 1 << (self.bits - 1)) for p in self.peak] if self.bits else []

    def summary(self) -> dict:
        """JSON-able: frames, input_frames, clipped, nonfinite, peak_dbfs (None for silence)."""
        return {
            "frames": self.frames,
            "input_frames": self.input_frames,
            "clipped": self.clipped,
            "nonfinite": self.nonfinite,
            "peak_dbfs": [_json_db(p) for p in self.peak_dbfs()],
        }


def _quantize(x: np.ndarray, bits: int, scale: float) -> tuple[np.ndarray, int]:
    """float64 samples × scale, rounded half to even, clipped to `bits`; returns (ints, clipped count).

    `x` must be finite (see `_silence_nonfinite`); a huge finite value (a DOUBLE file can hold
    1e300) overflows to ±inf here, which clips to full scale like any value past it.
    """
    with np.errstate(over="ignore"):
        y = np.rint(x * scale)
    hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    over = (y > hi) | (y < lo)
    clipped = int(np.count_nonzero(over))
    if clipped:
        np.clip(y, lo, hi, out=y)
    return y.astype(np.int16 if bits == 16 else np.int32), clipped


def _silence_nonfinite(x: np.ndarray, stats: ConvertStats) -> np.ndarray:
    """`x` with NaN and ±inf replaced by 0 (silence), counted in `stats.nonfinite`.

    One `isfinite(...).all()` per block when everything is finite (the usual case); the
    replacement is vectorised. Done before gain and resampling, which would otherwise
    spread a NaN over its neighbours.
    """
    finite = np.isfinite(x)
    if finite.all():
        return x
    stats.nonfinite += x.size - int(np.count_nonzero(finite))
    return np.where(finite, x, 0.0)


def _int32_to_wire(x: np.ndarray, bits: int) -> np.ndarray:
    """Left-justified int32 samples to wire ints: as is (32) or the top 16 bits (16)."""
    return x if bits == 32 else (x >> 16).astype(np.int16)


def _to_wire_bytes(ints: np.ndarray, bus: BusFormat) -> bytes:
    if ints.shape[1] < bus.channels:  # mono source on a stereo bus: same sample on both slots
        ints = np.repeat(ints, bus.channels, axis=1)
    return np.ascontiguousarray(ints, dtype=bus.dtype).tobytes()


def _then_held(blocks: Iterator[np.ndarray], live) -> Iterator[np.ndarray]:
    """The source's blocks, then what a live match still held back when it ended."""
    yield from blocks
    rest = live.rest() if live is not None else None
    if rest is not None and len(rest):
        yield rest


def play_blocks(
    inp: Input,
    bus: BusFormat,
    *,
    gain_db: float = 0.0,
    start_frame: int = 0,
    max_frames: int | None = None,
    block_frames: int = 4096,
    stats: ConvertStats | None = None,
    live=None,
) -> Iterator[bytes]:
    """Yield the file's audio in the wire format of `bus`, block by block (whole frames).
    `live`: a live.LiveMatch, which sees each block taken and matches the source's clock to the
    board's (i2scli/live/).

    `start_frame` and `max_frames` count file frames (at the file's rate). Blocks hold up to
    about `block_frames` frames (resampling changes the count); their concatenation does not
    depend on `block_frames`. The exact conversion rules are in the module docstring.
    When `bus.rate` differs from the file's rate, a streaming soxr resampler (HQ) converts it.
    `stats`, if given, is updated as blocks are yielded. Raises AudioError on read errors.
    """
    if start_frame < 0 or block_frames <= 0 or (max_frames is not None and max_frames < 0):
        raise ValueError("start_frame and max_frames must be >= 0, block_frames > 0")
    stats = stats if stats is not None else ConvertStats()
    stats.bits = bus.bits
    count = None if inp.frames is None else max(0, inp.frames - start_frame)
    if max_frames is not None:
        count = max_frames if count is None else min(count, max_frames)
    src_channels = min(inp.channels, bus.channels)  # a stereo source on a mono bus keeps the left
    resampler = None
    if bus.rate != inp.rate:
        import soxr

        resampler = soxr.ResampleStream(inp.rate, bus.rate, src_channels, dtype="float64", quality="HQ")
    exact = inp.integer and gain_db == 0 and resampler is None
    scale = float(1 << (bus.bits - 1)) * 10 ** (gain_db / 20)
    for block in _then_held(inp._blocks(start_frame, count, block_frames, "int32" if inp.integer else "float64"),
                            live):
        if live is not None:  # live: the reserve sampled (and, at its start, what piled up skipped)
            block = live.take(block)
        stats.input_frames += len(block)
        block = block[:, :src_channels]
        if exact and (live is None or not live.engaged):
            ints, clipped = _int32_to_wire(block, bus.bits), 0
            if live is not None:
                live.passed(block / 2**31)  # the resampler, once engaged, continues from these
        else:
            x = block / 2**31 if inp.integer else _silence_nonfinite(block, stats)
            if resampler is not None:
                x = resampler.resample_chunk(np.ascontiguousarray(x))
                if len(x) == 0:
                    yield b""  # nothing out yet (a stream waits for its source): the caller tends its link
                    continue
            if live is not None:
                x = live.resample(x)  # as it is until the clocks need matching
            ints, clipped = _quantize(x, bus.bits, scale)
        yield from _emit(ints, clipped, bus, stats)
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros((0, src_channels)), last=True)
        if len(tail):
            ints, clipped = _quantize(tail if live is None else live.resample(tail), bus.bits, scale)
            yield from _emit(ints, clipped, bus, stats)
    tail = live.flush() if live is not None else None
    if tail is not None and len(tail):
        ints, clipped = _quantize(tail, bus.bits, scale)
        yield from _emit(ints, clipped, bus, stats)


def _emit(ints: np.ndarray, clipped: int, bus: BusFormat, stats: ConvertStats) -> Iterator[bytes]:
    dup = bus.channels // ints.shape[1]
    data = _to_wire_bytes(ints, bus)
    stats._add(wire_to_array(data, bus), clipped * dup, bus.bits)
    yield data


def tone_blocks(
    freq: float,
    bus: BusFormat,
    *,
    frames: int,
    dbfs: float = -6.0,
    block_frames: int = 4096,
    stats: ConvertStats | None = None,
) -> Iterator[bytes]:
    """A sine of `freq` Hz at `dbfs` (peak, re full scale) on all channels, `frames` frames long.

    Sample k is ``rint(A·sin(2π·freq·k/rate)·(2**(bits-1) - 1))`` (as the virtual board's
    ``sine:`` source), with the phase computed exactly from k (freq to 1 mHz), so blocks
    are phase-continuous and the result does not depend on `block_frames`.
    """
    if frames < 0 or block_frames <= 0:
        raise ValueError("frames must be >= 0, block_frames > 0")
    stats = stats if stats is not None else ConvertStats()
    step = Fraction(freq).limit_denominator(1000) / bus.rate  # cycles per frame
    period, num = step.denominator, step.numerator % step.denominator
    amplitude = 10 ** (dbfs / 20) * ((1 << (bus.bits - 1)) - 1)
    for start in range(0, frames, block_frames):
        k = np.arange(start, min(frames, start + block_frames), dtype=np.int64)
        phase = ((k % period) * num) % period  # exact: period * num < 2**63 for audio rates
        x = np.sin(2 * np.pi * (phase / period))
        ints, clipped = _quantize(x[:, None], bus.bits, amplitude)
        yield from _emit(ints, clipped, bus, stats)


# --------------------------------------------------------------------------------------------
# Levels


class Levels:
    """Peak and RMS per channel of wire audio of format `bus`, for meters and reports.

    Feed it wire bytes or integer arrays (frames, channels). Levels are dBFS re 2**(bits-1)
    (a full-scale sine reads 0 dBFS peak, -3.01 dBFS RMS). `clipped` counts samples at full
    scale (either rail). A live meter uses `held_peak_dbfs`: the largest block peak,
    held `hold` seconds, then falling back to the latest block's peak.
    """

    def __init__(self, bus: BusFormat, hold: float = 3.0):
        self.bus = bus
        self.hold = hold
        n = bus.channels
        self.frames = 0
        self.peak = [0] * n
        self.clipped = [0] * n
        self._sumsq = [0.0] * n
        self.block_peak = [0] * n
        self._held = [0] * n
        self._held_at = [-math.inf] * n

    def feed(self, data: bytes | bytearray | memoryview | np.ndarray, now: float | None = None) -> None:
        """Add a block; `now` (seconds, any monotonic clock) drives the peak hold."""
        now = time.monotonic() if now is None else now
        x = wire_to_array(data, self.bus) if not isinstance(data, np.ndarray) else data.reshape(-1, self.bus.channels)
        if len(x) == 0:
            return
        x = x.astype(np.int64)
        hi, lo = self.bus.full_scale - 1, -self.bus.full_scale
        self.frames += len(x)
        block_peak = np.abs(x).max(axis=0).tolist()
        sumsq = np.einsum("ij,ij->j", x.astype(np.float64), x.astype(np.float64)).tolist()
        clipped = np.count_nonzero((x >= hi) | (x <= lo), axis=0).tolist()
        for c in range(self.bus.channels):
            self.peak[c] = max(self.peak[c], block_peak[c])
            self._sumsq[c] += sumsq[c]
            self.clipped[c] += clipped[c]
            if block_peak[c] >= self._held[c] or now - self._held_at[c] >= self.hold:
                self._held[c], self._held_at[c] = block_peak[c], now
        self.block_peak = block_peak

    def peak_dbfs(self) -> list[float]:
        """Peak over everything fed, per channel (-inf for silence)."""
        return [to_dbfs(p, self.bus.full_scale) for p in self.peak]

    def rms_dbfs(self) -> list[float]:
        """RMS over everything fed, per channel (-inf for silence or nothing fed)."""
        if not self.frames:
            return [-math.inf] * self.bus.channels
        return [to_dbfs(math.sqrt(s / self.frames), self.bus.full_scale) for s in self._sumsq]

    def held_peak_dbfs(self, now: float | None = None) -> list[float]:
        """The live meter's peak per channel: held `hold` seconds, then the latest block's."""
        now = time.monotonic() if now is None else now
        fs = self.bus.full_scale
        return [to_dbfs(h if now - t < self.hold else b, fs)
                for h, t, b in zip(self._held, self._held_at, self.block_peak)]

    def summary(self) -> dict:
        """JSON-able totals: format, frames, seconds, and per channel peak/RMS dBFS (None = silence), clipped."""
        return {
            "rate": self.bus.rate,
            "bits": self.bus.bits,
            "frames": self.frames,
            "seconds": round(self.frames / self.bus.rate, 3),
            "clipped": sum(self.clipped),
            "channels": [
                {"peak_dbfs": _json_db(p), "rms_dbfs": _json_db(r), "clipped": c}
                for p, r, c in zip(self.peak_dbfs(), self.rms_dbfs(), self.clipped)
            ],
        }


# --------------------------------------------------------------------------------------------
# Wire -> file


def _output_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in OUTPUT_FORMATS:
        supported = ", ".join(OUTPUT_FORMATS)
        raise AudioError(f"{path}: cannot record to {ext or 'a file without extension'!r}; use {supported} (or -)")
    return OUTPUT_FORMATS[ext]


def check_writable(path: str) -> None:
    """Raise AudioError (exit 1: a file that cannot be used) unless a file can be written at
    `path`: not a directory itself, in an existing directory we may write in, and writable if
    it is there already. Nothing is created. For any output a command writes (a recording, a
    JUnit report, a plot), so that it is refused before the board is touched."""
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a directory")
    parent = os.path.dirname(path) or "."
    if not os.path.exists(parent):
        raise AudioError(f"{path}: directory {parent} does not exist")
    if not os.path.isdir(parent):
        raise AudioError(f"{path}: {parent} is not a directory")
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise AudioError(f"{path}: permission denied")
    elif not os.access(parent, os.W_OK | os.X_OK):
        raise AudioError(f"{path}: cannot write in directory {parent}")


def check_output_path(path: str, raw: bool = False) -> None:
    """Raise AudioError unless `path` (or ``-``) can take a recording: `check_writable`, then a
    known extension unless `raw` (a directory is said to be one, whatever its name). Nothing is
    created."""
    if path == "-":
        if sys.stdout is None:  # started with stdout closed (`i2s record - >&-`)
            raise AudioError("standard output is closed: nowhere to write the recording")
        return
    check_writable(path)
    if not raw:
        _output_format(path)
    target = os.path.realpath(path)
    try:
        special = not stat.S_ISREG(os.stat(target).st_mode)
    except FileNotFoundError:
        special = False
    except OSError as e:  # a symlink loop, a name too long...
        raise AudioError(f"{path}: {_sf_message(e)}") from None
    folder = os.path.dirname(target)
    if not special and not (os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)):
        raise AudioError(f"{path}: cannot write in directory {folder} (a recording is made beside its file, "
                         f"then renamed over it)")


def _default_subtype(fmt: str, bus: BusFormat) -> str:
    if bus.bits == 16:
        return "PCM_16"
    return "PCM_24" if fmt == "FLAC" else "PCM_32"


def _wire_to_file(x: np.ndarray, bits: int, subtype: str) -> np.ndarray:
    """Wire ints (frames, channels) to the array libsndfile writes exactly as `subtype`.

    PCM_16: int16 (top 16 bits of 32-bit slots); PCM_24: int32 with the low byte cleared
    (so libsndfile's >> 8 is exact); PCM_32: int32. 16-bit wire samples are shifted up.
    """
    if subtype == "PCM_16":
        return x if bits == 16 else (x >> 16).astype(np.int16)
    wide = x.astype(np.int32) << 16 if bits == 16 else x
    return wide & np.int32(-256) if subtype == "PCM_24" else wide


class Output:
    """A recording being written. Use `open_output` to make one.

    `write` appends wire bytes (a trailing partial frame is kept for the next call);
    the file header is refreshed about once a second (`sync_interval`), so a process killed
    mid-recording leaves a readable WAV/RF64/W64 with (nearly) everything written so far.
    FLAC files are only complete after `close` (the encoder buffers and writes the stream
    info at the end). `close` always leaves a valid file.
    """

    def __init__(self, path: str, bus: BusFormat, fmt: str, subtype: str, *, sync_interval: float = 1.0,
                 sfile: sf.SoundFile | None = None, stream: BinaryIO | None = None,
                 temp: str | None = None, target: str | None = None):
        self.pipe: _PipeWriter | None = None  # a stream that is not a file: written as it comes, by a thread
        self._owned: BinaryIO | None = None  # a FIFO opened for this recording, closed with it
        self.path = path
        self._temp = temp  # the recording is made here, beside `target`, until it is put in place
        self._target = target
        self.bus = bus
        self.format = fmt
        self.subtype = subtype
        self.sync_interval = sync_interval
        self._sf = sfile
        self._stream = stream
        self._pending = b""
        self._frames = 0
        self._last_sync = time.monotonic()
        self._closed = False
        self._header_at = 0
        self._seekable = False
        if stream is not None:
            try:
                self._seekable = stream.seekable()
                self._header_at = stream.tell() if self._seekable else 0
            except OSError:
                self._seekable = False
            if not self._seekable:
                try:
                    fd = stream.fileno()
                except (OSError, AttributeError, ValueError):
                    fd = None
                if fd is not None:
                    stream.flush()
                    self.pipe = _PipeWriter(fd, bus.rate * bus.channels * self._file_sample_bytes)
            if fmt != "RAW":
                self._stream_write(self._wav_header(0xFFFFFFFF if not self._seekable else 0))

    @property
    def reader_gone(self) -> bool:
        """The reader of the pipe went away (`| head -c 1M`): the recording should end."""
        return self.pipe is not None and self.pipe.gone

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return self._frames

    @property
    def seconds(self) -> float:
        return self._frames / self.bus.rate

    def write(self, data: bytes | bytearray | memoryview | np.ndarray) -> None:
        """Append wire audio: bytes in the bus format, or an int array (frames, channels)."""
        if self._closed:
            raise AudioError(f"{self.path}: recording already closed")
        if isinstance(data, np.ndarray):
            data = np.ascontiguousarray(data, self.bus.dtype).tobytes()
        if self._pending:
            data = self._pending + bytes(data)
        whole = len(data) - len(data) % self.bus.frame_bytes
        self._pending = bytes(data[whole:])
        x = wire_to_array(memoryview(data)[:whole], self.bus)
        if len(x) == 0:
            return
        y = _wire_to_file(x, self.bus.bits, self.subtype)
        if self._sf is not None:
            try:
                self._sf.write(y)
            except _SF_ERRORS as e:
                raise self._write_error(e) from None
        elif self.pipe is not None:
            if not self.pipe.put(self._pack(y), len(x)):
                return  # dropped, counted (a reader slower than the stream), or the reader is gone
        else:
            self._stream_write(self._pack(y))
        self._frames += len(x)
        if self._temp is not None:  # the recording has really started: it takes the place of what was there
            self.sync()
            self._commit()
        elif time.monotonic() - self._last_sync >= self.sync_interval:
            self.sync()

    def _commit(self) -> None:
        if self._temp is None:
            return
        try:
            _publish(self._temp, self._target)
        except OSError as e:  # the audio stays where it is: said, never removed
            raise AudioError(f"{self.path}: cannot put the recording in place ({_sf_message(e)}); "
                             f"it is in {self._temp}") from None
        self._temp = None

    def _write_error(self, e: BaseException) -> AudioError:
        """What a failed libsndfile write means, in words. libsndfile itself only says "System
        error"; the OS's reason is kept on the file (sf_strerror: "System error : No space left
        on device.") and, as a fallback, in errno."""
        code = sf._ffi.errno  # read first: a later C call may change it
        try:
            reason = sf._ffi.string(sf._snd.sf_strerror(self._sf._file)).decode(errors="replace")
        except Exception:  # noqa: BLE001 - the words are a nicety; the error stands without them
            reason = ""
        reason = " ".join(reason.removeprefix("System error :").split()).rstrip(".")
        if reason.startswith("System error"):  # no OS detail on the file: trust errno
            reason = os.strerror(code) if code else reason
        full = {os.strerror(errno.ENOSPC): "no space left on the device",
                os.strerror(errno.EDQUOT): "disk quota exceeded"}
        if reason in full:
            try:  # libsndfile's position: everything that fit, part of the failed block included
                self._frames = max(self._frames, self._sf.tell())
            except _SF_ERRORS:
                pass
            return AudioError(f"{self.path}: {full[reason]}; the recording stops here and keeps the "
                              f"{self._frames} frames ({self.seconds:.2f} s) that fit")
        return AudioError(f"{self.path}: cannot write: {reason or _sf_message(e)}")

    def sync(self) -> None:
        """Bring the header's sizes up to date now (WAV, RF64, W64 and seekable stdout)."""
        self._last_sync = time.monotonic()
        if self._sf is not None:
            if self.format != "FLAC":
                sf._snd.sf_command(self._sf._file, _SFC_UPDATE_HEADER_NOW, sf._ffi.NULL, 0)
        elif self._seekable and self.format != "RAW":
            self._patch_header()
        elif self._stream is not None and self.pipe is None:
            self._stream_flush()

    def close(self) -> None:
        """Finish the file (sizes in the header) and put it in place, empty or not: the
        recording ended as asked. A trailing partial frame is dropped."""
        if self._closed:
            return
        self._closed = True
        if self._sf is not None:
            try:
                self._sf.close()
            except _SF_ERRORS as e:
                if not self._frames:
                    self._remove_temp()
                raise AudioError(f"{self.path}: cannot finish the file: {_sf_message(e)}") from None
            self._commit()
        elif self.pipe is not None:
            self.pipe.close()
            self._frames -= self.pipe.unwritten_frames
            if self._owned is not None:
                try:
                    self._owned.close()
                except OSError:
                    pass
        elif self._stream is not None:
            if self._seekable and self.format != "RAW":
                self._patch_header()
            self._stream_flush()

    def abandon(self) -> None:
        """The recording failed or was stopped: keep it (finished, in place) if it holds audio;
        else remove it, and whatever was at its path before stays as it was. Never raises:
        the caller is already on its way out with the reason."""
        if self._frames and not self._closed:
            try:
                self.close()
            except AudioError:
                pass
            return
        self._closed = True
        if self._sf is not None:
            try:
                self._sf.close()
            except _SF_ERRORS:
                pass
        self._remove_temp()

    def _remove_temp(self) -> None:
        if self._temp is not None:
            try:
                os.unlink(self._temp)
            except OSError:
                pass
            self._temp = None

    def __enter__(self) -> Output:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()

    # -- WAV on a stream (stdout) --------------------------------------------------------

    @property
    def _file_sample_bytes(self) -> int:
        return int(self.subtype[4:]) // 8

    def _wav_header(self, data_size: int) -> bytes:
        ch, width = self.bus.channels, self._file_sample_bytes
        riff_size = min(0xFFFFFFFF, data_size + 36)
        fmt = struct.pack("<HHIIHH", 1, ch, self.bus.rate, self.bus.rate * ch * width, ch * width, 8 * width)
        return (b"RIFF" + struct.pack("<I", riff_size) + b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt
                + b"data" + struct.pack("<I", data_size))

    def _pack(self, y: np.ndarray) -> bytes:
        if self.subtype == "PCM_24":  # top three bytes of each little-endian int32
            return np.ascontiguousarray(y, "<i4").view(np.uint8).reshape(-1, 4)[:, 1:].tobytes()
        return np.ascontiguousarray(y, y.dtype.newbyteorder("<")).tobytes()

    def _patch_header(self) -> None:
        assert self._stream is not None
        size = self._frames * self.bus.channels * self._file_sample_bytes
        try:
            end = self._stream.tell()
            self._stream.seek(self._header_at)
            self._stream.write(self._wav_header(min(size, 0xFFFFFFFF)))
            self._stream.seek(end)
            self._stream.flush()
        except OSError as e:
            raise AudioError(f"cannot write the WAV header: {_sf_message(e)}") from None

    def _stream_write(self, data: bytes) -> None:
        assert self._stream is not None
        if self.pipe is not None:
            self.pipe.put(data, 0)
            return
        try:
            self._stream.write(data)
        except BrokenPipeError:
            raise AudioError("standard output was closed (broken pipe)") from None
        except OSError as e:
            raise _stdout_error(e) from None

    def _stream_flush(self) -> None:
        assert self._stream is not None
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise AudioError("standard output was closed (broken pipe)") from None
        except OSError as e:
            raise _stdout_error(e) from None


#: How much a pipe's reader may fall behind before audio is dropped (counted as overruns).
PIPE_BACKLOG_S = 2.0


class _PipeWriter:
    """Writes a recording into a pipe (a FIFO, a socket, a terminal) from a thread of its own,
    as it comes: the link to the board never waits for the reader. A reader slower than the
    stream fills a bounded backlog (PIPE_BACKLOG_S of audio); past it blocks are dropped and
    counted (`overruns`, `lost_frames`), never lost silently. A reader that goes away
    (EPIPE: `| head -c 1M`) sets `gone`; what follows is not written."""

    def __init__(self, fd: int, bytes_per_second: int):
        import queue

        self.fd = fd
        self.limit = max(1 << 16, int(PIPE_BACKLOG_S * bytes_per_second))
        self.queue: queue.Queue = queue.Queue()
        self.backlog = 0  # bytes queued, not yet written
        self.overruns = 0  # times the backlog was full (a run of dropped blocks counts once)
        self.lost_frames = 0
        self.unwritten_frames = 0  # frames accepted but never written (the reader went away)
        self.gone = False
        self.error: AudioError | None = None
        self._dropping = False
        self._inflight = 0  # frames of the block being written
        self._abandoned = False  # close() gave up waiting for the reader
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="i2s-output", daemon=True)
        self._thread.start()

    def put(self, data: bytes, frames: int) -> bool:
        """Queue `data` (`frames` audio frames); False when it was dropped (counted) or the
        reader is gone."""
        if self.gone:
            return False
        with self._lock:
            if self.backlog + len(data) > self.limit and frames:
                if not self._dropping:
                    self.overruns += 1
                    self._dropping = True
                self.lost_frames += frames
                return False
            self._dropping = False
            self.backlog += len(data)
        self.queue.put((data, frames))
        return True

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            data, frames = item
            self._inflight = frames
            if not self.gone:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(self.fd, view):]
                except BrokenPipeError:
                    self._reader_went_away()
                except OSError as e:
                    self.error = _stdout_error(e)
                    self._reader_went_away()
            with self._lock:
                if self.gone and not self._abandoned:
                    self.unwritten_frames += frames
                self._inflight = 0
                self.backlog -= len(data)

    def _reader_went_away(self) -> None:
        self.gone = True
        try:  # nothing written later (an exit's flush included) meets the closed pipe
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.fd)
            os.close(devnull)
        except OSError:
            pass

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (waiting at most `timeout` s for the reader), then stop; what a
        reader that stopped reading left in the queue is counted as never written."""
        self.queue.put(None)
        self._thread.join(timeout)
        with self._lock:
            if not self._thread.is_alive():
                return
            # the reader stopped reading: the write under way and what is queued never reach it
            self.gone = self._abandoned = True
            self.unwritten_frames += self._inflight
        import queue

        try:
            while True:
                item = self.queue.get_nowait()
                if item is not None:
                    self.unwritten_frames += item[1]
        except queue.Empty:
            pass


def _stdout_error(e: OSError) -> AudioError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        words = "no space left on the device" if e.errno == errno.ENOSPC else "disk quota exceeded"
        return AudioError(f"cannot write to standard output: {words}")
    return AudioError(f"cannot write to standard output: {_sf_message(e)}")


def open_output(
    path: str,
    bus: BusFormat,
    *,
    subtype: str | None = None,
    sync_interval: float = 1.0,
    stdout: BinaryIO | None = None,
    raw: bool = False,
) -> Output:
    """Create a recording of wire audio in format `bus` at `path`.

    The format comes from the extension: .wav (WAV), .flac (FLAC), .rf64 (RF64, for more than
    4 GB), .w64 (Sony Wave64). ``-`` writes a WAV to standard output (or `stdout` if given):
    on a pipe the header can't be rewritten, so it says "unknown length" (0xFFFFFFFF sizes),
    which libsndfile, sox and ffmpeg read to the end of the data; when stdout is a regular
    file the header is fixed up as for a path. On a pipe the audio goes out as it comes, from
    a thread (`_PipeWriter`): a slow reader costs counted overruns, a reader that goes away
    sets `Output.reader_gone`. `raw`: headerless little-endian PCM of `subtype`, any name.

    `subtype` is PCM_16, PCM_24 or PCM_32; the default is PCM_16 for 16-bit buses and PCM_32
    for 32-bit ones, except FLAC, which stores at most 24 bits: PCM_24 (the top 24 bits of
    each slot). Raises AudioError (before any audio moves) for an unsupported extension or
    subtype, a missing or unwritable directory, or a file that can't be created.
    """
    check_output_path(path, raw)
    fmt = "RAW" if raw else "WAV" if path == "-" else _output_format(path)
    if subtype is None:
        subtype = _default_subtype(fmt, bus)
    subtype = subtype.upper()
    if subtype not in OUTPUT_SUBTYPES:
        raise AudioError(f"cannot record as {subtype}; use one of {', '.join(OUTPUT_SUBTYPES)}")
    if fmt == "FLAC" and subtype == "PCM_32":
        raise AudioError("FLAC stores at most 24 bits: use PCM_24, or a .wav/.rf64/.w64 file for PCM_32")
    if path == "-":
        if stdout is None and sys.stdout is None:  # started with stdout closed (`i2s record - >&-`)
            raise AudioError("standard output is closed: nowhere to write the recording")
        stream = stdout if stdout is not None else sys.stdout.buffer
        return Output("standard output", bus, fmt, subtype, sync_interval=sync_interval, stream=stream)
    target = os.path.realpath(path)  # through a symlink: the file it points to, the link kept
    try:
        special = not stat.S_ISREG(os.stat(target).st_mode)
    except OSError:
        special = False
    if special and fmt in ("WAV", "RAW") and stat.S_ISFIFO(os.stat(target).st_mode):
        try:  # a FIFO: written as it comes, as standard output is
            fifo = open(target, "wb")
        except OSError as e:
            raise AudioError(f"{path}: cannot open: {_sf_message(e)}") from None
        out = Output(path, bus, fmt, subtype, sync_interval=sync_interval, stream=fifo)
        out._owned = fifo
        return out
    temp = None
    if not special:  # made beside the target, renamed over it when the recording has started
        temp = _temp_beside(path, target)
    try:
        sfile = sf.SoundFile(temp or path, "w", samplerate=bus.rate, channels=bus.channels, subtype=subtype,
                             format=fmt, **({"endian": "LITTLE"} if raw else {}))
    except _SF_ERRORS as e:
        if temp is not None:
            os.unlink(temp)
        raise AudioError(f"{path}: cannot create: {_sf_message(e)}") from None
    return Output(path, bus, fmt, subtype, sync_interval=sync_interval, sfile=sfile, temp=temp, target=target)


def _temp_beside(path: str, target: str) -> str:
    """A new empty temporary file in `target`'s directory (so that renaming it over `target`
    is atomic), named after it and hidden: ``.rec.wav.XXXXXX.part``."""
    folder, base = os.path.split(target)
    try:
        # the name kept short enough for any name the target may have (NAME_MAX is 255)
        fd, temp = tempfile.mkstemp(dir=folder or ".", prefix=f".{base[:200]}.", suffix=".part")
    except OSError as e:
        raise AudioError(f"{path}: cannot create: {_sf_message(e)}") from None
    os.close(fd)
    return temp


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish(temp: str, target: str) -> None:
    """Rename `temp` over `target` (atomic: same directory), with the permissions `target` had
    (its owner too, where we may set it), else those a new file gets."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        os.chmod(temp, 0o666 & ~_umask())
    else:
        os.chmod(temp, stat.S_IMODE(st.st_mode))
        if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
            try:
                os.chown(temp, st.st_uid, st.st_gid)
            except OSError:
                pass
    os.replace(temp, target)


@contextmanager
def replacing(path: str) -> Iterator[str]:
    """A temporary path beside `path` (beside its target, through a symlink) to write a whole
    file at; renamed over `path`'s target when the block ends, removed if it raises, so that
    a failed write leaves what was there as it was."""
    target = os.path.realpath(path)
    temp = _temp_beside(path, target)
    try:
        yield temp
        _publish(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
