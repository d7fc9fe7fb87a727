# The virtual board's I2S work that runs beside board code (MicroPython code, runs inside the
# unix port): non-blocking transfers served at their deadlines ("the DMA interrupt"), and the
# board's sleeps and blocking waits that serve them meanwhile.
import utime as _t
import micropython as _mp
import _simdma
import _simesp32
import _simport as _port

_ticks_us = _port.now
_ticks_diff = _t.ticks_diff

active = []  # initialised I2S objects


def service_all(now):
    for s in active:
        if s._nb:
            service(s, now)


def _min_wait(now):
    """us until the earliest non-blocking deadline (large when none)."""
    w = 1000000
    for s in active:
        if s._nb and wait_us(s, now) < w:
            w = wait_us(s, now)
    return w


def sleep_until(wake):
    """time.sleep* and the like: sleep until the board's clock reaches wake, servicing
    non-blocking I2S work at its deadlines meanwhile. It takes the host's time in full (a
    host may be waiting out the board's sleep, e.g. to switch its baud rate); a wake-up
    the host delays is not seen by the board (_simport.py, lag)."""
    _sleep(wake, 0)


def wait_ring(wake):
    """A blocking write or readinto waiting for its ring: as sleep_until, but the board's
    clock first takes back what it trails the host's by (the lag), so a late wake-up never
    makes the ring over- or underrun, and the call ends when its ring's schedule says."""
    _sleep(wake, 1)


def _sleep(wake, take):
    while True:
        now = _ticks_us()
        if _port.npend:
            service_all(now)
        d = _ticks_diff(wake, now)
        if d <= 0:
            return
        if _port.npend:
            w = _min_wait(now)
            if w < 20:
                w = 20
            if w < d:
                d = w
        if take:
            w = _port.lag
            if w >= d:
                _port.lag = w - d  # the board's clock catches up without sleeping
                continue
            _port.lag = 0
            d -= w
        _port.sleep_host(d)


def start(o, buf):
    """A non-blocking write or readinto of I2S object `o`: filed, then served as its data moves."""
    o._tick(_ticks_us())  # what came before the call (may overrun)
    if not o._nb:
        _port.npend += 1
    o._nb = True
    o._nb_buf = buf
    if not o._tx:
        o._grace = o._end  # the "DMA interrupt" copies out as data comes
    service(o, _ticks_us())
    return o._end - (0 if o._tx else o._off)


def stop(o):
    """The pending transfer is abandoned (or done)."""
    if o._nb:
        o._nb = False
        o._nb_buf = None
        o._grace = 0
        _port.npend -= 1


def service(o, now):
    """The transfer's progress up to `now`; its callback is scheduled when done."""
    o._tick(now)
    if not o._nb:
        return
    if o._tx:
        k = o._cap - o._ring
        if k > o._end - o._off:
            k = o._end - o._off
        if o._en:  # esp32: the port's task writes with portMAX_DELAY
            _simesp32.fill(o, o._nb_buf)
        elif k > 0 and not o._hf:  # (with DMA halves: at their interrupts, _simdma)
            o._accept(o._nb_buf, k)
    else:
        if o._en:
            _simesp32.gather(o)
        now = o._end - o._off
        if o._ring >= now or (now > o._cap and o._ring >= o._chunk):
            if now > o._ring:
                now = o._ring
            o._take_at(o._nb_buf, o._off, now)
            o._off += now
    if o._off >= o._end:
        stop(o)
        if o._cb is not None:
            try:
                _mp.schedule(o._cb, o)
            except RuntimeError:
                pass  # schedule queue full: the ports drop it too


def wait_us(o, now):
    """us until this object's non-blocking work can progress."""
    if o._tx:
        if o._en:
            f = _simesp32.wait_frames(o) if o._off < o._end else 0
        elif o._hf:
            f = _simdma.nb_wait_frames(o) if o._off < o._end else 0
        else:
            f = o._tx_wait_frames(o._end - o._off)
    else:
        f = o._end - o._off
        f = o._rx_wait_frames(f if f <= o._cap else o._chunk)
    if not f:
        return 0
    f = _ticks_diff(o._wake_at(f), now)
    return f if f > 0 else 0
