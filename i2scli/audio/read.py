"""Opening an input: a file, standard input, or a pipe/FIFO that plays as it comes."""

from __future__ import annotations

import os
import stat
import struct
import sys
import threading
from typing import BinaryIO

import soundfile as sf

from i2scli.audio.rawpcm import RawFormat
from i2scli.audio.sndfile import SF_ERRORS, sf_message
from i2scli.audio.source import Input, StreamReader, is_integer_subtype
from i2scli.audio.spool import spool_stdin
from i2scli.errors import AudioError


def _stdin() -> BinaryIO:
    if sys.stdin is None:  # started with stdin closed (`i2s play - <&-`)
        raise AudioError("standard input is closed: nothing to play")
    return sys.stdin.buffer


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
            raise AudioError(f"{name}: cannot read: {sf_message(e)}") from None
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
            return _open_spooled(spool_stdin(stream, name), name, channels_map, raw, closers)
        if raw is not None:
            try:
                sfile = sf.SoundFile(fd, "r", samplerate=raw.rate, channels=raw.channels, subtype=raw.subtype,
                                     endian=raw.endian, format="RAW", closefd=False)
            except SF_ERRORS as e:
                raise AudioError(f"{name}: cannot read raw PCM: {sf_message(e)}") from None
            dtype = "int32" if is_integer_subtype(raw.subtype) else "float64"
            reader = StreamReader(sfile, name, dtype, raw.shift, closers)
            closers = []
            return _checked_input(sfile, name, channels_map, None, reader, raw)
        head = _read_head(fd, name)
        if not head:
            raise AudioError(f"{name}: nothing to read (it was empty)")
        if not _streams(head):
            return _open_spooled(spool_stdin(stream, name, head), name, channels_map, raw, closers)
        r, w = os.pipe()
        threading.Thread(target=_pump, args=(fd, w, _unknown_length(head)), name="i2s-pump", daemon=True).start()
        try:
            sfile = sf.SoundFile(r, closefd=False)
        except SF_ERRORS as e:
            os.close(r)  # the pump sees its reader gone and stops
            raise AudioError(f"{name}: not a readable audio file ({sf_message(e)})") from None
        dtype = "int32" if is_integer_subtype(sfile.subtype) else "float64"
        reader = StreamReader(sfile, name, dtype, 0, [lambda: os.close(r), *closers])
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
    except SF_ERRORS as e:
        if spool is not None:
            spool.close()
        what = "cannot read raw PCM" if raw is not None else "not a readable audio file"
        raise AudioError(f"{name}: {what} ({sf_message(e)})") from None
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
            raise AudioError(f"{path}: cannot read: {sf_message(e)}") from None
        return _open_stream(fifo, path, channels_map, raw, owned=fifo)
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: empty file, not audio")
    return _open_sf(path, name, channels_map, raw, None)
