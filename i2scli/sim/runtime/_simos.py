# os for the virtual board: the unix port's os plus the board's uname().
# Put in sys.modules["os"] by _board.py. (MicroPython code.)
from os import *  # noqa: F401,F403
import os as _os
import _simcfg

__name__ = "os"


class _Uname(_simcfg.AttrTuple):
    _fields = ("sysname", "nodename", "release", "version", "machine")

    def __init__(self, p):
        rel = p.get("release", "1.28.0")
        self.sysname = p.get("platform", "")
        self.nodename = p.get("platform", "")
        self.release = rel
        self.version = "v%s on %s" % (rel, _simcfg.BUILD_DATE)
        self.machine = p.get("machine", "")

    def __iter__(self):
        return iter(self._t())

    def __eq__(self, other):
        return tuple(self._t()) == tuple(other)


def uname():
    return _Uname(_simcfg.profile)


def dupterm(stream=None, index=0):
    """A second console (extmod/os_dupterm.c): the port reads it, a byte at a time, while it
    waits for input, and takes its interrupt character as Ctrl-C. The simulator hands what the
    stream gives to the board model as input (_simwait.py); what the board prints is not copied
    to the stream. Returns the stream it replaces."""
    import _simwait

    if index != 0:
        raise ValueError("invalid dupterm index")
    old = _simwait.dupterm[0]
    _simwait.dupterm[0] = stream
    if stream is not None:
        _simwait.start()
    return old


def ilistdir(path="."):
    # Board filesystems (FAT, littlefs) give (name, type, inode, size);
    # VfsPosix gives no size, which mpremote's "fs ls" shows as 0.
    sep = b"/" if isinstance(path, bytes) else "/"
    base = path if path.endswith(sep) else path + sep
    for ent in _os.ilistdir(path):
        if len(ent) >= 4:
            yield ent
            continue
        size = 0
        if ent[1] == 0x8000:
            try:
                size = _os.stat(base + ent[0])[6]
            except OSError:
                pass
        yield (ent[0], ent[1], ent[2], size)
