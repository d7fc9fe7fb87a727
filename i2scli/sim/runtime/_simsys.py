# sys for the virtual board: the unix port's sys (same modules, path, argv,
# stdin, exit, ...) with the board's platform/implementation, and the console
# streams cooked like a real port's. Put in sys.modules["sys"]. (MicroPython.)
from sys import *  # noqa: F401,F403
import sys as _sys
import _simcfg
import _simio

__name__ = "sys"


def _vtuple(rel):
    out = []
    for x in rel.split("."):
        try:
            out.append(int(x))
        except ValueError:
            out.append(0)
    while len(out) < 3:
        out.append(0)
    return tuple(out[:3]) + ("",)


class _Impl(_simcfg.AttrTuple):
    _fields = ("name", "version", "_machine", "_mpy", "_build")

    def __init__(self, p):
        real = _sys.implementation
        self.name = "micropython"
        self.version = _vtuple(p.get("release", "1.28.0"))
        self._machine = p.get("machine", "")
        self._mpy = getattr(real, "_mpy", 0)
        if not p.get("native", True):
            self._mpy &= 0x3FF  # no native emitter: MPY_FEATURE_ARCH 0 (py/persistentcode.h)
        self._build = p.get("name", "")



platform = _simcfg.profile.get("platform", "")
implementation = _Impl(_simcfg.profile)
version = "3.4.0; MicroPython v%s on %s" % (_simcfg.release(), _simcfg.BUILD_DATE)
executable = ""
stdout = _simio.stdout
stderr = _simio.stderr
print_exception = _simio.print_exception
# Delegated attributes of the builtin sys (not in its globals, so not copied
# by "import *"): the same objects, so sys.path.append() etc. still work.
path = _sys.path
ps1 = _sys.ps1
ps2 = _sys.ps2
