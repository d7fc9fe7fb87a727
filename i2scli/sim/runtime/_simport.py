# The port the virtual board imitates (MicroPython code, runs inside the unix port): its family
# and rules, set once at boot by machine._configure, and what the pin, I2S and UART models
# (_simpin.py, _simi2s.py, _simuart.py) share. Rebound names are read as attributes of this
# module (_port.family), so every model sees the configured value.
import utime as _t

profile = None
family = "rp2"  # stm32 | rp2 | esp32 | mimxrt | alif
rules = None  # the profile's I2S rules (None: no machine.I2S)
freq = 125000000
npend = 0  # I2S objects with non-blocking work pending (_simi2s)
service = None  # _simnb.service_all(now): Pin calls service pending I2S work too

_EPERM = 1
_EINVAL = 22

# -- the board's clock ---------------------------------------------------------------------------
# A real board runs whenever it has work: nothing takes its CPU away, and it wakes from a sleep
# on time. The board process waits whenever the host's scheduler runs others, up to tens of ms
# on a loaded machine; that time is the host's, not the board's. So the board's clock (ticks_us,
# and everything timed by it: I2S rings, events) trails the host's monotonic clock by `lag` µs:
# the process's waits for a CPU (its run-queue wait, /proc/self/schedstat, looked at whenever
# the board reads its clock) and its waits for the simulator's own model (_chan), at most
# LAG_MAX. A blocking I2S call waiting for its ring takes the lag back before sleeping on the
# host (_simnb.py wait_ring), so it does not add up: a board streaming audio keeps the host's
# rate. time.sleep* takes the host's time in full (a host may be waiting it out). A stopped process (a `hang` fault) is not waiting for a CPU: that time, like
# the time the board spends on its own work, stays the board's.
_ticks_us = _t.ticks_us
_ticks_add = _t.ticks_add
_ticks_diff = _t.ticks_diff
sleep_host = _t.sleep_us  # sleep on the host's clock (its lateness is accounted by accrue)
lag = 0
LAG_MAX = 250000  # µs; i2scli/sim/board.py keeps loopback frames this much longer
try:
    _sched = open("/proc/self/schedstat", "rb")  # before the board's filesystem hides /proc
    _sched.seek(0)
    _sched.readinto(bytearray(64))
except OSError:  # pragma: no cover
    _sched = None
_sbuf = bytearray(64)
_w_last = -1  # the run-queue wait (µs) at the last look
_t_look = 0  # the host's ticks_us() at the last look
_LOOK_US = 300


def _run_wait_us():
    """The process's total run-queue wait so far (µs), or -1 when the kernel does not say.
    (No try/except and few locals: a bigger call frame is heap-allocated on every call.)"""
    f = _sched
    if f is None:
        return -1
    f.seek(0)
    return _parse(f.readinto(_sbuf))


def _parse(n):
    b = _sbuf
    i = 0
    while i < n and b[i] != 32:  # the first field: time on the CPU
        i += 1
    i += 1
    v = 0
    while i < n:
        c = b[i]
        if c < 48 or c > 57:
            break
        v = v * 10 + c - 48
        i += 1
    return v // 1000


def _add(d):
    global lag
    if d > LAG_MAX - lag:
        d = LAG_MAX - lag
    if d > 0:
        lag += d


def accrue():
    """The run-queue wait since the last look becomes lag. (A look costs ~15 µs; within
    _LOOK_US of the last one there can be no wait worth it, and none is taken.)"""
    global _w_last, _t_look
    t = _ticks_us()
    if _ticks_diff(t, _t_look) < _LOOK_US:
        return
    _t_look = t
    w = _run_wait_us()
    if w < 0:
        return
    if _w_last >= 0:
        _add(w - _w_last)
    _w_last = w


_shown = None  # the last ticks_us() the board was given


def now():
    """The board's ticks_us(): the host's, less the lag, and never less than it has shown (a
    wait counted after the board read its clock, e.g. a model call that began before that read,
    would otherwise turn it back: a probe then measured -6 µs). What it cannot take back from
    the past, the lag gives up."""
    global lag, _shown
    accrue()
    t = _ticks_add(_ticks_us(), -lag)
    if _shown is not None:
        back = _ticks_diff(_shown, t)
        if back > 0:
            lag -= back
            t = _shown
    _shown = t
    return t


def host_us():
    """The host's clock (µs), for timing a wait that is the simulator's and not the board's."""
    return _ticks_us()


def waited(t0):
    """The host's time since t0 was spent on the simulator's work: the board's clock skips it
    (the run-queue wait in it counted once)."""
    global _w_last
    _add(_ticks_diff(_ticks_us(), t0))
    if _w_last >= 0:
        _w_last = _run_wait_us()


def _type_name(x):
    return type(x).__name__


def _get_int(v):
    if isinstance(v, int):
        return int(v)
    raise TypeError("can't convert %s to int" % _type_name(v))


def configure(prof):
    """The family and CPU clock of the profile's port."""
    global profile, family, rules, freq
    profile = prof
    plat = prof.get("platform")
    machine_str = prof.get("machine") or ""
    if plat == "pyboard":
        family = "stm32"
    elif plat in ("rp2", "esp32", "mimxrt", "alif"):
        family = plat
    else:
        family = "rp2"
    rules = prof.get("i2s")
    freq = prof.get("cpu_hz") or {"stm32": 480000000 if "H7" in machine_str else 168000000,
            "rp2": 125000000, "esp32": 160000000, "mimxrt": 600000000,
            "alif": 400000000}[family]
