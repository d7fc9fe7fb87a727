# The virtual board's `time` module (MicroPython code): the built-in time,
# except that sleep/sleep_ms/sleep_us wake up at the deadlines of I2S
# non-blocking (irq) transfers and do their work, so I2S callbacks fire while
# board code sleeps, as they would on a real board, and that the ticks are the
# board's clock (_simport.py: the host's, less what a late wake-up the host
# caused would add). _board.py puts this module in sys.modules["time"];
# machine._configure() installs the hook.
from utime import *  # noqa: F401,F403  (ticks_diff, ticks_add, time, ... unchanged)
import utime as _t
import _simport as _port

_ticks_add = _t.ticks_add
_ticks_us = _port.now


def ticks_us():
    return _port.now()


def ticks_ms():
    # the unix port's ticks period is 2**62: ticks_ms() is ticks_us() // 1000 unwrapped
    return _ticks_add(0, _port.now() // 1000)


def ticks_cpu():
    return _port.now()

# machine._sleep_until(wake_us): sleeps until then, servicing I2S work.
_sleep_until = None


def _hook():
    global _sleep_until
    if _sleep_until is None:
        import sys

        m = sys.modules.get("machine")
        _sleep_until = getattr(m, "_sleep_until", None)
    return _sleep_until


def sleep_us(us):
    h = _sleep_until or _hook()
    if h is None:
        _t.sleep_us(us)
    elif us > 0:
        h(_ticks_add(_ticks_us(), us))


def sleep_ms(ms):
    h = _sleep_until or _hook()
    if h is None:
        _t.sleep_ms(ms)
    elif ms > 0:
        h(_ticks_add(_ticks_us(), ms * 1000))


def sleep(s):
    h = _sleep_until or _hook()
    if h is None:
        _t.sleep(s)
    elif s > 0:
        if isinstance(s, int):
            h(_ticks_add(_ticks_us(), s * 1000000))
        else:
            h(_ticks_add(_ticks_us(), int(s * 1000000)))
