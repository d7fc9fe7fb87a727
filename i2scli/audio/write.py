"""Recordings: wire audio to a file, a pipe or standard output, in blocks.

Recording (wire -> file), see `open_output`: the file keeps the top bits of each slot,
exactly: a 32-bit bus written as PCM_24 keeps the top 24 bits (a 24-bit microphone in a
32-bit slot loses nothing), as PCM_16 the top 16; a 16-bit bus written as PCM_24/PCM_32 is
shifted up losslessly.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import sys
import time
from typing import BinaryIO

import numpy as np
import soundfile as sf

from i2scli.audio.atomic import Finished, publish, temp_beside
from i2scli.audio.busformat import BusFormat
from i2scli.audio.pipesink import PipeWriter, stdout_error
from i2scli.audio.sndfile import SF_ERRORS, sf_message
from i2scli.audio.wire import wire_to_array
from i2scli.errors import AudioError

#: File extensions `open_output` accepts, and the libsndfile major format each one writes.
OUTPUT_FORMATS: dict[str, str] = {".wav": "WAV", ".flac": "FLAC", ".rf64": "RF64", ".w64": "W64"}
#: Sample formats `open_output` writes.
OUTPUT_SUBTYPES = ("PCM_16", "PCM_24", "PCM_32")


_SFC_UPDATE_HEADER_NOW = 0x1060  # sndfile.h


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
        raise AudioError(f"{path}: {sf_message(e)}") from None
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


class Output(Finished):
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
        self.pipe: PipeWriter | None = None  # a stream that is not a file: written as it comes, by a thread
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
                    self.pipe = PipeWriter(fd, bus.rate * bus.channels * self._file_sample_bytes)
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
            except SF_ERRORS as e:
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
            publish(self._temp, self._target)
        except OSError as e:  # the audio stays where it is: said, never removed
            raise AudioError(f"{self.path}: cannot put the recording in place ({sf_message(e)}); "
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
            except SF_ERRORS:
                pass
            return AudioError(f"{self.path}: {full[reason]}; the recording stops here and keeps the "
                              f"{self._frames} frames ({self.seconds:.2f} s) that fit")
        return AudioError(f"{self.path}: cannot write: {reason or sf_message(e)}")

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
            except SF_ERRORS as e:
                if not self._frames:
                    self._remove_temp()
                raise AudioError(f"{self.path}: cannot finish the file: {sf_message(e)}") from None
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
            except SF_ERRORS:
                pass
        self._remove_temp()

    def _remove_temp(self) -> None:
        if self._temp is not None:
            try:
                os.unlink(self._temp)
            except OSError:
                pass
            self._temp = None


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
            raise AudioError(f"cannot write the WAV header: {sf_message(e)}") from None

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
            raise stdout_error(e) from None

    def _stream_flush(self) -> None:
        assert self._stream is not None
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise AudioError("standard output was closed (broken pipe)") from None
        except OSError as e:
            raise stdout_error(e) from None


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
    a thread (`PipeWriter`): a slow reader costs counted overruns, a reader that goes away
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
            raise AudioError(f"{path}: cannot open: {sf_message(e)}") from None
        out = Output(path, bus, fmt, subtype, sync_interval=sync_interval, stream=fifo)
        out._owned = fifo
        return out
    temp = None
    if not special:  # made beside the target, renamed over it when the recording has started
        temp = temp_beside(path, target)
    try:
        sfile = sf.SoundFile(temp or path, "w", samplerate=bus.rate, channels=bus.channels, subtype=subtype,
                             format=fmt, **({"endian": "LITTLE"} if raw else {}))
    except SF_ERRORS as e:
        if temp is not None:
            os.unlink(temp)
        raise AudioError(f"{path}: cannot create: {sf_message(e)}") from None
    return Output(path, bus, fmt, subtype, sync_interval=sync_interval, sfile=sfile, temp=temp, target=target)
