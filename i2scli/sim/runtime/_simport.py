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
service = None  # _simi2s._service_all(now): Pin calls service pending I2S work too

_EPERM = 1
_EINVAL = 22

# -- the board's clock ---------------------------------------------------------------------------
# A real board wakes from a sleep on time; the board process wakes when the host's scheduler runs
# it, up to tens of ms late on a loaded machine. That delay is the host's, not the board's: the
# board's clock (ticks_us and everything timed by it: I2S rings, events) trails the host's
# monotonic clock by `lag` µs, the part of the last wake-up's lateness the host caused (the rise
# of the process's run-queue wait, /proc/self/schedstat, during the sleep), and the run-queue
# wait while it had work to do, and its waits for the simulator's own model; at most LAG_MAX.
# The next sleeps take it back before sleeping on the host, so it never adds up: over any stretch
# that has sleeps the board's clock runs at the host's rate. A stopped process (a `hang` fault)
# or one busy on its own work is not waiting in the run queue: that time stays the board's.
_ticks_us = _t.ticks_us
_ticks_add = _t.ticks_add
_ticks_diff = _t.ticks_diff
_sleep_us = _t.sleep_us
lag = 0
LAG_MAX = 50000  # µs; i2scli/sim/board.py keeps loopback frames this much longer
_SLOP = 100  # µs of lateness any sleep has (timer slack): not worth asking the kernel about
try:
    _sched = open("/proc/self/schedstat", "rb")  # before the board's filesystem hides /proc
except OSError:  # pragma: no cover
    _sched = None
_sbuf = bytearray(64)
_w_last = -1  # the run-queue wait (µs) at the last look


def now():
    """The board's ticks_us(): the host's, less the lag."""
    return _ticks_add(_ticks_us(), -lag)


def _run_wait_us():
    """The process's total run-queue wait so far (µs), or -1 when the kernel does not say."""
    f = _sched
    if f is None:
        return -1
    try:
        f.seek(0)
        n = f.readinto(_sbuf)
    except OSError:
        return -1
    i = 0
    while i < n and _sbuf[i] != 32:  # the first field: time on the CPU
        i += 1
    i += 1
    v = 0
    while i < n and 48 <= _sbuf[i] <= 57:
        v = v * 10 + _sbuf[i] - 48
        i += 1
    return v // 1000


def host_us():
    """The host's clock (µs), for timing a wait that is the simulator's and not the board's."""
    return _ticks_us()


def waited(t0):
    """The host's time since t0 was spent on the simulator's work: the board's clock skips it."""
    global lag
    d = _ticks_diff(_ticks_us(), t0)
    if d > LAG_MAX - lag:
        d = LAG_MAX - lag
    if d > 0:
        lag += d


def accrue():
    """The run-queue wait since the last look (the host ran others while the board had work)
    becomes lag."""
    global lag, _w_last
    w = _run_wait_us()
    if w < 0:
        return
    d = w - _w_last if _w_last >= 0 else 0
    _w_last = w
    if d > LAG_MAX - lag:
        d = LAG_MAX - lag
    if d > 0:
        lag += d


def sleep_host(us):
    """Sleep `us` µs of the host's time; the host-caused part of a late wake-up becomes lag."""
    global lag, _w_last
    t = _ticks_us()
    _sleep_us(us)
    late = _ticks_diff(_ticks_us(), t) - us
    if late > _SLOP and _w_last >= 0:
        w = _run_wait_us()
        host = w - _w_last
        _w_last = w
        if late > host:
            late = host
        if late > LAG_MAX - lag:
            late = LAG_MAX - lag
        if late > 0:
            lag += late


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
    freq = {"stm32": 480000000 if "H7" in machine_str else 168000000,
            "rp2": 125000000, "esp32": 160000000, "mimxrt": 600000000,
            "alif": 400000000}[family]
