# The virtual board's machine.Timer for the rp2 port (MicroPython code, runs inside the unix
# port), v1.28.0 ports/rp2/machine_timer.c: soft timers only. Timer() or Timer(-1); another id
# is "Timer doesn't exist". Every call makes a new object. An armed timer is an alarm in the
# pico-sdk's default alarm pool (PICO_TIME_DEFAULT_ALARM_POOL_MAX_TIMERS 16; none free:
# OSError ENOMEM). init() first cancels the timer's alarm, then takes mode (ONE_SHOT 0,
# PERIODIC 1, default PERIODIC), callback, period with tick_hz (default 1000: ms), or freq, and
# hard (default False). A soft callback is queued with mp_sched_schedule (shared/runtime/mpirq.c
# mp_irq_dispatch) and runs in the main code's context, also while it waits in a stdin read
# (ports/rp2/mphalport.c mp_hal_stdin_rx_chr -> mp_event_wait_indefinite -> mp_handle_pending):
# _simwait.py runs it. A hard callback runs at the alarm (here in _simwait's thread); one that
# raises stops its timer. No value(); deinit() cancels the alarm (expiries already queued run).
import utime as _t
import _simwait
from _simport import _get_int

_POOL = 16  # alarms in the default pool (the slots of _simwait.timers)
_ENOMEM = 12


class Timer(_simwait.Expiries):
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, **kw):
        if _get_int(id) != -1:
            raise ValueError("Timer doesn't exist")
        self._fresh()
        if kw:
            self.init(**kw)

    def init(self, *, mode=1, callback=None, period=0xFFFFFFFF, tick_hz=1000, freq=None, hard=False):
        self._armed = False  # alarm_pool_cancel_alarm
        us = _simwait.period_us(_get_int(period), _get_int(tick_hz), freq)
        self._repeat = _get_int(mode)
        self._period = us
        self._callback = callback
        self._hard = bool(hard)
        _alarm(self)
        self._due = _t.ticks_add(_t.ticks_us(), self._period)
        self._armed = True
        _simwait.start()

    def deinit(self):
        self._armed = False

    __del__ = deinit

    def __repr__(self):
        return "Timer(mode=%s, tick_hz=1000000, period=%u)" % (
            "PERIODIC" if self._repeat else "ONE_SHOT", self._period)


def _alarm(tim):
    """A slot of the alarm pool for `tim`: its own, else one whose timer is done."""
    slots = _simwait.timers
    free = -1
    for i in range(_POOL):
        s = slots[i]
        if s is tim:
            return
        if free < 0 and (s is None or (not s._armed and s._ran == s._fired)):
            free = i
    if free < 0:
        raise OSError(_ENOMEM)
    slots[free] = tim
