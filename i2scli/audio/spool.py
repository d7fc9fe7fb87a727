"""A non-seekable input in a format that needs seeking, copied to a temporary file within bounds."""

from __future__ import annotations

import os
import tempfile
from typing import BinaryIO

import soundfile as sf

from i2scli.audio.sndfile import SF_ERRORS, sf_message
from i2scli.errors import AudioError

_SPOOL_CHUNK = 1 << 20


#: A non-seekable input (stdin, a FIFO, a device) is copied to a temporary file before it plays
#: (most formats need seeking). Its first SPOOL_SNIFF bytes must open as audio, and it must end
#: within SPOOL_MAX bytes (the largest WAV): an endless source such as /dev/zero is refused, not
#: copied until the disk is full.
SPOOL_SNIFF = 16 << 20
SPOOL_MAX = 4 << 30


def _size_words(n: int) -> str:
    return f"{n >> 30} GiB" if n >= 1 << 30 else f"{n >> 20} MiB" if n >= 1 << 20 else f"{n} bytes"


def spool_stdin(stream: BinaryIO, name: str = "standard input", head: bytes = b"") -> BinaryIO:
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
                    raise AudioError(f"{name}: cannot read: {sf_message(e)}") from None
            if not chunk:
                break
            try:
                spool.write(chunk)
            except OSError as e:
                raise AudioError(f"{name}: cannot keep a copy in {tempfile.gettempdir()} to play it from "
                                 f"({sf_message(e)}): give a regular file, or set TMPDIR") from None
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
        except SF_ERRORS as e:
            raise AudioError(f"{name}: not a readable audio file (its first {_size_words(SPOOL_SNIFF)} are "
                             f"not audio: {sf_message(e)})") from None
    finally:
        spool.seek(0, os.SEEK_END)
