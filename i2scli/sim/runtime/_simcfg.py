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
