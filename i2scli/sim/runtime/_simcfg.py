# Board configuration shared by the runtime modules (MicroPython code).
# _board.py fills these in before importing the wrapper modules.
profile = {}
cfg = {}
BUILD_DATE = "2026-04-06"


def release():
    return profile.get("release", "1.28.0")


def banner():
    """MICROPY_BANNER_NAME_AND_VERSION + "; " + MICROPY_BANNER_MACHINE."""
    return "MicroPython v%s on %s; %s" % (release(), BUILD_DATE, profile.get("machine", ""))


class AttrTuple:
    """A port's attrtuple (py/objattrtuple.c: os.uname(), sys.implementation): its `_fields` by
    name and by index, printed as (name=value, ...)."""

    _fields = ()

    def _t(self):
        return tuple(getattr(self, k) for k in self._fields)

    def __getitem__(self, i):
        return self._t()[i]

    def __len__(self):
        return len(self._fields)

    def __repr__(self):
        return "(" + ", ".join("%s=%r" % (k, v) for k, v in zip(self._fields, self._t())) + ")"
