# The virtual board's machine.Timer (MicroPython code, runs inside the unix port): the esp32
# port's, v1.28.0 (ports/esp32/machine_timer.c). Hardware timers only, Timer(0..3)
# (SOC_TIMER_GROUP_TOTAL_TIMERS 4 on ESP32 and ESP32-S3; virtual timers, Timer(-1), came after
# v1.28): the id is required, another id is "invalid Timer number". The same id gives the same
# object. init() takes mode (ONE_SHOT 0, PERIODIC 1, default PERIODIC), callback, period with
# tick_hz (default 1000: ms), or freq; hard=True is "hard Timers are not implemented". The
# callback is soft: the alarm ISR queues it with mp_sched_schedule, and it runs in the main
# code's context (_simwait.py: how, also while the main code waits in a blocking read).
# deinit() stops it; value() (ms counted since init) is "timer not set" after deinit.
import utime as _t
import _simwait
from _simport import _get_int

_NUM = 4
_OBJS = [None] * _NUM


class Timer(_simwait.Expiries):
    ONE_SHOT = 0
    PERIODIC = 1

    def __new__(cls, id, *args, **kw):
        n = _get_int(id)
        if n < 0 or n >= _NUM:  # the port compares as unsigned: -1 is invalid too
            raise ValueError("invalid Timer number")
        self = _OBJS[n]
        if self is None:
            self = object.__new__(cls)
            self._id = n
            self._fresh()
            self._set = False
            self._t0 = 0
            _OBJS[n] = self
        if args or kw:
            self.init(*args, **kw)
        return self

    def __init__(self, id, *args, **kw):
        pass

    def init(self, *, mode=1, callback=None, period=0xFFFFFFFF, tick_hz=1000, freq=None, hard=False):
        self._armed = False
        if hard:
            raise ValueError("hard Timers are not implemented")
        us = _simwait.period_us(_get_int(period), _get_int(tick_hz), freq)
        self._repeat = _get_int(mode)
        self._callback = callback
        self._period = us
        self._t0 = _t.ticks_us()
        self._due = _t.ticks_add(self._t0, self._period)
        self._set = True
        self._armed = True
        _simwait.timers[self._id] = self
        _simwait.start()

    def deinit(self):
        self._armed = False
        self._set = False  # expiries already queued still run (the port's schedule queue keeps them)

    __del__ = deinit

    def value(self):
        if not self._set:
            raise ValueError("timer not set")
        return _t.ticks_diff(_t.ticks_us(), self._t0) % self._period // 1000

    def __repr__(self):
        return "Timer(%u, mode=%s, period=%u)" % (
            self._id, "PERIODIC" if self._repeat else "ONE_SHOT", self._period // 1000)
