"""A recording in files of a fixed length (`i2s record --max-file-time`, as arecord): each file
holds exactly `frames_per_file` frames (the last the rest), cut at frame boundaries of one
stream, so the files put end to end are the recording, no frame lost or repeated between them.

Names as arecord makes them: FILE, renamed FILE-01.ext once a second file (FILE-02.ext)
starts; or, with `{n}` in FILE, the file number there (01, 02, ...; `{n:03d}` for another
width); with --use-strftime, FILE is a strftime pattern taken when each file starts, `%v`
(arecord's) or `{n}` the file number."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

from i2scli import audio
from i2scli.audio.atomic import Finished

_N = re.compile(r"\{n(?::([0-9]*d))?\}")


def has_number(pattern: str, strftime: bool) -> bool:
    return bool(_N.search(pattern)) or (strftime and "%v" in pattern)


def file_name(pattern: str, n: int, strftime: bool, when: float | None = None) -> str:
    """File `n` (from 1) of `pattern`: `{n}` (and with strftime `%v`) the number, then
    strftime's fields at `when` (localtime)."""
    name = _N.sub(lambda m: format(n, m.group(1) or "02d"), pattern)
    if strftime:
        name = time.strftime(name.replace("%v", f"{n:02d}"), time.localtime(when))
    return name


def numbered(path: str, n: int) -> str:
    """arecord's FILE-NN.ext for a FILE without a number in it."""
    head, ext = os.path.splitext(path)
    return f"{head}-{n:02d}{ext}"


class SplitOutput(Finished):
    """What session.record writes to (audio.Output's interface), in files of frames_per_file."""

    def __init__(self, pattern: str, bus: audio.BusFormat, frames_per_file: int, *, subtype: str | None = None,
                 raw: bool = False, strftime: bool = False, clock: Callable[[], float] = time.time):
        if frames_per_file <= 0:
            raise ValueError("frames_per_file must be > 0")
        self.pattern, self.bus, self.per_file = pattern, bus, frames_per_file
        self._subtype, self._raw, self._strftime, self._clock = subtype, raw, strftime, clock
        self._numbered = has_number(pattern, strftime)
        self.files: list[str] = []  # every file made, in order (the first renamed as arecord does)
        self.pipe = None
        self.reader_gone = False
        self._cur: audio.Output | None = None
        self._left = 0
        self._frames = 0
        self._pending = b""
        self._open(1)  # the first file now: a name or a directory that cannot be used is said before any audio

    def _open(self, n: int) -> None:
        if self._numbered or self._strftime:
            name = file_name(self.pattern, n, self._strftime, self._clock())
            if name in self.files:  # a pattern that named an earlier file again (same second): not over it
                name = numbered(name, n)
        elif n == 1:
            name = self.pattern
        else:
            if n == 2:  # arecord: the first file takes its number once there is a second
                first = numbered(self.pattern, 1)
                os.replace(self.files[0], first)
                self.files[0] = first
            name = numbered(self.pattern, n)
        self._cur = audio.open_output(name, self.bus, subtype=self._subtype, raw=self._raw)
        self.files.append(name)
        self._left = self.per_file

    @property
    def path(self) -> str:
        return self.files[-1]

    @property
    def subtype(self) -> str:
        return self._cur.subtype

    @property
    def format(self) -> str:
        return self._cur.format

    @property
    def frames(self) -> int:
        return self._frames

    def write(self, data: bytes | bytearray | memoryview) -> None:
        fb = self.bus.frame_bytes
        buf = self._pending + bytes(data)
        whole = len(buf) // fb * fb
        self._pending = buf[whole:]
        view = memoryview(buf)[:whole]
        while len(view):
            if self._left == 0:
                self._cur.close()
                self._open(len(self.files) + 1)
            k = min(len(view) // fb, self._left)
            self._cur.write(view[:k * fb])
            self._left -= k
            self._frames += k
            view = view[k * fb:]

    def sync(self) -> None:
        self._cur.sync()

    def close(self) -> None:
        self._cur.close()

    def abandon(self) -> None:
        """Nothing recorded: the file that was opened for it goes (files already full stay)."""
        self._cur.abandon()
        if self._frames == 0:
            self.files.pop()

