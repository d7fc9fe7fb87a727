# The virtual board's `machine` module (MicroPython code, runs inside the unix port): the
# module board code imports. The models live beside it, one concern a module: the port being
# imitated (_simport.py), Pin (_simpin.py), I2S (_simi2s.py), UART (_simuart.py), Timer
# (_simtimer.py, with _simwait.py); this module
# re-exports them and configures them at boot.
#
# _board.py puts this module in sys.modules["machine"] and calls
# machine._configure(profile_dict) once at boot, before user code runs.
# The module then imitates the profile's port: Pin (ids, constants, errors) and,
# when profile["i2s"] is not None, machine.I2S (argument checks and error texts
# of the port's machine_i2s.c, real-time ring-buffer timing). With
# profile["i2s"] None the module has no I2S attribute at all, so
# `from machine import I2S` raises ImportError as on a stock alif firmware.
#
# I2S keeps real time with arithmetic only. The board model (CPython) holds the
# sample data; this side only counts (see docs/sim-internals.md):
#   frame bytes fb = bits/8 * (2 STEREO | 1 MONO); the ring holds ibuf bytes
#   rounded down to whole frames; frames clocked by time t since init at t0 are
#   (ticks_diff(t, t0) * rate) // 1_000_000 (with --clock-ppm N, rate·(1 + N/10⁶):
#   the I2S clock N ppm off the host's, see _clocked).
#   TX: clocked frames leave the ring (record C); when the ring is empty zeros are
#   clocked instead (an underrun, counted once the first write has happened).
#   rp2, stm32 and mimxrt put two 128-byte DMA halves between the ring and the
#   pins (ports/*/machine_i2s.c SIZEOF_DMA_BUFFER_IN_BYTES 256, feed_dma): at the
#   end of each half the port refills it from the ring, a whole half or zeros,
#   and it plays after the other half. So written audio reaches the pins 1-2
#   halves later, and leaves the ring a half at a time (_simdma.out_dma).
#   RX: clocked frames enter the ring while there is room, the rest are lost
#   (an overrun); readinto takes bytes from the ring head (record R).
# Steady-state write/readinto (blocking mode) and Pin.value allocate nothing.
#
# Non-blocking (irq) mode: the unix port has no timers or safe threads, so the
# work a DMA interrupt would do (feeding the ring from the pending write buffer,
# filling the pending readinto buffer, scheduling the callback with
# micropython.schedule) is done lazily whenever board code calls into this
# module (any I2S or Pin method) or sleeps through the `time` wrapper
# (_simtime.py, whose sleeps wake up at the I2S deadlines). Callbacks therefore
# fire when the board code calls into time/machine, as they would on a real
# board during those calls; a busy loop that calls neither never sees them.
#
# asyncio: I2S is an io.IOBase stream; ioctl(MP_STREAM_POLL) switches it to the
# port's "asyncio" mode (write/readinto become partial, as on the real ports),
# so asyncio.StreamWriter(i2s) / asyncio.StreamReader(i2s) work.
#
# Sim-only extras (not on real boards): I2S._sim_stats() returns the counters
# (unless the board runs with --sim-stats no).
import utime as _t
import _simport as _port
import _simpin
import _simi2s
import _simuart
import _simtimer
import _simalarm
import _simwait
from _simpin import Pin  # noqa: F401
from _simi2s import _sleep_until

try:
    import umachine as _bm  # the built-in machine module of the unix port
except ImportError:  # pragma: no cover
    _bm = None

if _bm is not None:  # what the board's port has as the unix port has it
    for _n in ("PinBase", "Signal", "idle", "mem8", "mem16", "mem32", "time_pulse_us"):
        globals()[_n] = getattr(_bm, _n)
    del _n

_ticks_us = _port.now  # the board's clock (_simport.py)
_ticks_add = _t.ticks_add


# ---------------------------------------------------------------------------
# misc machine functions
# ---------------------------------------------------------------------------
def freq(*args):
    if args:
        return None
    return _port.freq


def unique_id():
    return b"\x53\x49\x4d\x00\x00\x00\x00\x01"


def disable_irq():
    return 0


def enable_irq(state=0):
    return None


def lightsleep(ms=None):
    if ms is not None:
        _sleep_until(_ticks_add(_ticks_us(), ms * 1000))


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------
def _offer(g, name, cls, objs=()):
    """machine.`name` is `cls`, none of its objects made yet; no machine.`name` where cls is None."""
    if cls is None:
        g.pop(name, None)
        return
    g[name] = cls
    for i in range(len(objs)):
        objs[i] = None


def _configure(profile):
    """Called once at boot with Profile.board_dict(): imitate that port."""
    _port.configure(profile)
    _simpin.configure(profile)
    g = globals()
    # I2S: present only where the port has it
    _offer(g, "I2S", _simi2s.configure(profile))
    # UART: the esp32 port's (UART(0) is its REPL UART); the simulator has no
    # UART for other ports
    _offer(g, "UART", _simuart.UART if profile.get("uart_repl") else None, _simuart._UART_OBJS)
    # Timer: the esp32 port's hardware timers (_simtimer.py), the rp2 port's soft timers
    # (_simalarm.py); the simulator has none for other ports
    for i in range(len(_simwait.timers)):
        _simwait.timers[i] = None
    if profile.get("soft_timers"):
        _offer(g, "Timer", _simalarm.Timer)
    else:
        _offer(g, "Timer", _simtimer.Timer if profile.get("hw_timers") else None, _simtimer._OBJS)

    # time.sleep* wake up for I2S deadlines
    try:
        import _simtime

        _simtime._sleep_until = _sleep_until
    except ImportError:
        pass


# _board.py fills _simcfg.profile before importing this module: configure now
# (a later explicit _configure() call simply configures again).
try:
    import _simcfg

    if getattr(_simcfg, "profile", None):
        _configure(_simcfg.profile)
except ImportError:
    pass
