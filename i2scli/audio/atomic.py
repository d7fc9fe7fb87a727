"""Files written beside their target and renamed over it, so that a failed write leaves the old one."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from i2scli.audio.sndfile import sf_message
from i2scli.errors import AudioError


def temp_beside(path: str, target: str) -> str:
    """A new empty temporary file in `target`'s directory (so that renaming it over `target`
    is atomic), named after it and hidden: ``.rec.wav.XXXXXX.part``."""
    folder, base = os.path.split(target)
    try:
        # the name kept short enough for any name the target may have (NAME_MAX is 255)
        fd, temp = tempfile.mkstemp(dir=folder or ".", prefix=f".{base[:200]}.", suffix=".part")
    except OSError as e:
        raise AudioError(f"{path}: cannot create: {sf_message(e)}") from None
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


def publish(temp: str, target: str) -> None:
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
    temp = temp_beside(path, target)
    try:
        yield temp
        publish(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


_O = TypeVar("_O", bound="Finished")


class Finished:
    """A recording as a context: closed (published) when the block ends well, abandoned when it raises."""

    def close(self) -> None:
        raise NotImplementedError

    def abandon(self) -> None:
        raise NotImplementedError

    def __enter__(self: _O) -> _O:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()
