# The virtual board's machine.I2S (MicroPython code, runs inside the unix port): the port's
# argument checks and texts, real-time ring and DMA timing (machine.py's header says how).
import utime as _t
import micropython as _mp
import io as _io
import _chan
import _simdma
import _simesp32
import _simport as _port
from _simport import _EINVAL, _EPERM, _get_int, _type_name  # noqa: F401
from _simpin import Pin, _pin_find, _pin_index, _pin_event, _pmode  # noqa: F401

_ticks_us = _port.now  # the board's clock (_simport.py): the host's, less the host's waits
_ticks_diff = _t.ticks_diff
_ticks_add = _t.ticks_add

# ---------------------------------------------------------------------------
# I2S
# ---------------------------------------------------------------------------
_BLOCKING = 0
_NON_BLOCKING = 1
_ASYNCIO = 2

_active = []  # initialised I2S objects
_by_id = {}  # bus id -> object (the ports keep one object per bus)
_port.npend = 0  # objects with non-blocking work pending
_next_sid = 0
_lost = None  # sim --loopback drop=FRAME:N[,drop_every=]: (RX bus id, FRAME, N, EVERY), set by _configure
_ppm = 0  # sim --clock-ppm N: every I2S clock runs N ppm fast (negative: slow), set by _configure
_stats = True  # I2S._sim_stats exists (sim --sim-stats no takes it away), set by _configure

# Port constants for I2S.RX / I2S.TX (MICROPY_PY_MACHINE_I2S_CONSTANT_RX/TX)
_I2S_MODES = {
    "rp2": (0, 1),  # enum {RX, TX}
    "mimxrt": (0, 1),  # enum {RX, TX}
    "esp32": (1, 2),  # I2S_DIR_RX = BIT(0), I2S_DIR_TX = BIT(1)
    "stm32f4": (0x300, 0x200),  # I2S_MODE_MASTER_RX / _TX (I2SCFG at bit 8)
    "stm32h7": (6, 4),  # I2S_MODE_MASTER_RX / _TX (I2SCFG at bit 1)
}


# Byte length of a buffer as the ports take it (mp_get_buffer): len() of an
# array or memoryview counts items, not bytes. A FileIO write to /dev/null
# returns the byte count without allocating (opened now: the board filesystem
# mounted at '/' later hides /dev).
try:
    _null = open("/dev/null", "wb")
except OSError:  # pragma: no cover
    _null = None


def _nbytes(buf):
    t = type(buf)
    if t is bytearray or t is bytes or _null is None:
        return len(buf)
    return _null.write(buf)


def _service_all(now):
    for s in _active:
        if s._nb:
            s._service(now)


def _min_wait(now):
    """us until the earliest non-blocking deadline (large when none)."""
    w = 1000000
    for s in _active:
        if s._nb and s._nb_wait(now) < w:
            w = s._nb_wait(now)
    return w


def _sleep_until(wake):
    """time.sleep* and the like: sleep until the board's clock reaches wake, servicing
    non-blocking I2S work at its deadlines meanwhile. It takes the host's time in full (a
    host may be waiting out the board's sleep, e.g. to switch its baud rate); a wake-up
    the host delays is not seen by the board (_simport.py, lag)."""
    _sleep(wake, 0)


def _wait_ring(wake):
    """A blocking write or readinto waiting for its ring: as _sleep_until, but the board's
    clock first takes back what it trails the host's by (the lag), so a late wake-up never
    makes the ring over- or underrun, and the call ends when its ring's schedule says."""
    _sleep(wake, 1)


def _sleep(wake, take):
    while True:
        now = _ticks_us()
        if _port.npend:
            _service_all(now)
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


class _I2S(_io.IOBase):
    # constants are set per port by _configure()
    RX = 0
    TX = 1
    MONO = 0
    STEREO = 1

    def __init__(self, *args, **kw):
        self._clear()
        if len(args) < 1:
            raise TypeError("function missing 1 required positional arguments")
        i2s_id = _get_int(args[0])
        _check_id(i2s_id)
        self._id = i2s_id
        prev = _by_id.get(i2s_id)
        if prev is not None:
            prev.deinit()
        _by_id[i2s_id] = self
        self._init_helper(args[1:], kw)

    def _reset_session(self):
        # per-session clock, ring and counters: set at construction and at every init()
        self._clk = 0
        self._ring = 0
        self._started = False
        self._under = False
        self._over = False
        self._grace = 0
        self._pfill = 0
        self._pdrop = 0
        self._n_under = 0
        self._n_under_f = 0
        self._n_over = 0
        self._n_over_f = 0
        self._discarded = 0
        self._lost_at = 0  # loopback drop: RX frame where _lost_n frames are lost
        self._lost_n = 0
        self._lost_every = 0  # frames from one loss to the next (0: one loss)
        self._io = _BLOCKING
        self._cb = None
        self._nb = False
        self._nb_buf = None
        self._h0 = 0  # TX DMA halves, the one playing and the next: 1 data, 0 zeros, -1 zeros of an underrun
        self._h1 = 0
        self._first = -1  # TX frame (since init) where the first written frame went out

    def _clear(self):
        # every attribute exists from here on: later stores never grow the dict
        self._id = 0
        self._live = False
        self._tx = True
        self._sid = 0
        self._bits = 16
        self._fmt = 0
        self._mode = 0
        self._rate = 1
        self._ibuf = 0
        self._fb = 4
        self._cap = 4
        self._chunk = 4
        self._t0 = 0
        self._hf = 0  # TX DMA half in frames (0: no DMA stage modelled, esp32)
        self._hb = 0  # ring bytes one half takes
        self._rxh = 0  # RX DMA half in frames (0: frames enter the ring one by one)
        self._dd = 0  # scratch of _out_dma
        self._dz = 0
        self._hz = 0  # what a half fed without audio is: -1 an underrun, 0 before any audio
        self._en = 0  # esp32: DMA buffers in the circle (0: not esp32's rules; _simesp32)
        self._bb = 0  # esp32: bytes of user frames a DMA buffer holds
        self._q = 0  # esp32: buffers in the queue
        self._cur = -1  # esp32: the buffer write/readinto holds (-1: none yet)
        self._rw = 0  # esp32 TX: its rw_pos
        self._full = False  # esp32 asyncio: DMA_MEMORY_FULL (TX) / _EMPTY (RX)
        self._lo = None  # esp32 TX: per buffer, data in [0, lo) and [s, e) (bytes)
        self._px = 0  # esp32 scratch (_simesp32)
        self._pa = 0
        self._pb = 0
        self._s = None
        self._e = None
        self._reset_session()
        self._off = 0  # scratch: current transfer position / non-blocking descriptor
        self._end = 0
        self._pins = None
        self._mck = None

    # -- construction -------------------------------------------------------
    def init(self, *args, **kw):
        self.deinit()
        self._init_helper(args, kw)

    def _init_helper(self, pos, kw):
        global _next_sid
        rules = _port.rules
        has_mck = rules.get("mck")
        names = ("sck", "ws", "sd", "mck", "mode", "bits", "format", "rate", "ibuf")
        if pos:
            raise TypeError("extra positional arguments given")
        vals = {}
        found = 0
        for n in names:
            if n == "mck" and not has_mck:
                continue
            if n in kw:
                found += 1
                v = kw[n]
                if n in ("mode", "bits", "format", "rate", "ibuf"):
                    v = _get_int(v)
                vals[n] = v
            elif n == "mck":
                vals[n] = None
            else:
                raise TypeError("'%s' argument required" % n)
        if found < len(kw):
            raise TypeError("extra keyword arguments given")

        RX = _I2S.RX
        TX = _I2S.TX
        mode = vals["mode"]
        bits = vals["bits"]
        fmt = vals["format"]
        rate = vals["rate"]
        ibuf = vals["ibuf"]
        fam = _port.family
        i2s_id = self._id

        def check_mode():
            if mode != RX and mode != TX:
                raise ValueError("invalid mode")

        if fam == "mimxrt":
            check_mode()  # the mimxrt port checks the mode before the pins
        sck, ws, sd, mck = _check_pins(vals, i2s_id, mode == TX)
        if fam != "mimxrt":
            check_mode()
        if bits != 16 and bits != 32:
            raise ValueError("invalid bits")
        if fmt != _I2S.MONO and fmt != _I2S.STEREO:
            raise ValueError("invalid format")
        rates = rules.get("rates")
        if rates and rate not in rates:
            raise ValueError("invalid rate")
        if fam == "esp32":
            # esp32 checks neither; ESP-IDF refuses a channel it cannot build
            if ibuf <= 0 or rate <= 0:
                raise OSError(-258, "ESP_ERR_INVALID_ARG")
        elif ibuf <= 0:
            raise ValueError("invalid ibuf")
        if rate <= 0:
            # the ports do not check; a clock of 0 Hz would never move (sim guard)
            raise ValueError("invalid rate")

        # -- configured: start the session ----------------------------------
        self._tx = mode == TX
        self._mode = mode
        self._bits = bits
        self._fmt = fmt
        self._rate = rate
        self._ibuf = ibuf
        fb = (bits // 8) * (2 if fmt == _I2S.STEREO else 1)
        self._fb = fb
        if mode == RX:
            # RX rings hold 8-byte frames whatever the format (extmod/machine_i2s.c
            # I2S_RX_FRAME_SIZE_IN_BYTES): ibuf // 8 frames; esp32 keeps ibuf // 2048
            # (at least 2) DMA buffers of 256 frames (ports/esp32/machine_i2s.c)
            cap = (ibuf // 8) * fb
        elif fam in ("rp2", "stm32", "mimxrt"):
            cap = ibuf - 1  # extmod/machine_i2s.c ringbuf: one byte tells full from empty
        else:
            cap = (ibuf // fb) * fb
        self._en = 0
        if fam == "esp32":  # no ring: a circle of DMA buffers (_simesp32)
            _simesp32.setup(self, ibuf, mode == TX)
            cap = self._cap
        if cap < fb:
            cap = fb  # (the real ports would stall forever on such a buffer)
        self._cap = cap
        if mode == TX and fam in ("rp2", "stm32", "mimxrt"):
            # the DMA buffer holds stereo frames (mono samples doubled): 128 bytes a half
            self._hf = 128 // (4 if bits == 16 else 8)
            self._hb = self._hf * fb
        else:
            self._hf = 0
            self._hb = 0
        # RX on the ring ports: 128-byte DMA halves of 8-byte frames enter the ring whole (_simdma)
        self._rxh = 16 if mode == RX and fam in ("rp2", "stm32", "mimxrt") else 0
        ch = (cap // 4 // fb) * fb
        self._chunk = ch if ch >= fb else fb
        self._reset_session()
        if _lost is not None and mode == RX and i2s_id == _lost[0]:
            self._lost_at = _lost[1]
            self._lost_n = _lost[2]
            e = _lost[3]
            if e:  # ["smp", N] or ["s", num, den]: frames at this rate, halves up
                p = e[1] if e[0] == "smp" else (2 * e[1] * rate + e[2]) // (2 * e[2])
                self._lost_every = p if p > _lost[2] else _lost[2] + 1
        if self._lost_n:
            self._rxh = 0  # (sim --loopback drop= keeps RX frame by frame)
            self._en = 0
        self._pins = (sck, ws, sd)
        self._mck = mck
        self._sid = _next_sid & 0xFF
        _next_sid += 1
        # the pins now belong to the I2S peripheral; a pad that cannot drive (esp32 GPIO34-39)
        # stays an input: ESP-IDF logs its refusal and goes on (i2scli/sim/i2s_pins.py)
        weak = rules.get("input_only") or ()
        for p in (sck, ws, sd, mck):
            if p is not None:
                i = _pin_index(p)
                if p in weak and (p != sd or mode == TX):
                    _pmode[i] = 0
                else:
                    _pmode[i] = 3
                _pin_event(i)
        self._t0 = _ticks_us()
        self._live = True
        _active.append(self)
        _chan.event("i2s_init", t=self._t0, sid=self._sid, id=i2s_id,
                    mode="tx" if self._tx else "rx", bits=bits,
                    format="stereo" if fmt == _I2S.STEREO else "mono", rate=rate,
                    ibuf=ibuf, sck=sck, ws=ws, sd=sd, mck=mck, frame_bytes=fb,
                    dma_bufs=self._en if self._tx else 0, dma_buf_bytes=self._bb if self._tx else 0)

    def deinit(self):
        if _port.npend:
            _service_all(_ticks_us())
        if not self._live:
            return None
        self._tick(_ticks_us())
        self._stop_nb()
        if self._rxh:  # the half the DMA was filling never reaches the ring
            self._pdrop += self._clk % self._rxh
        d = self._ring // self._fb
        if self._en and not self._tx:
            d += _simesp32.rx_deinit(self)
        if not self._tx and (self._pfill or self._pdrop):
            _chan.rx(self._sid, self._pfill, self._pdrop, None, 0)
            self._pfill = 0
            self._pdrop = 0
        self._discarded = d
        self._ring = 0
        self._live = False
        _active.remove(self)
        _chan.event("i2s_deinit", sid=self._sid, frames=self._clk,
                    underruns=self._n_under, underrun_frames=self._n_under_f,
                    overruns=self._n_over, overrun_frames=self._n_over_f,
                    discarded_frames=self._discarded)
        return None

    def __repr__(self):
        if self._pins is None:
            return "I2S(id=%u)" % self._id
        sck, ws, sd = self._pins
        s = "I2S(id=%u,\nsck=%s,\nws=%s,\nsd=%s,\n" % (self._id, sck, ws, sd)
        if _port.rules.get("mck"):
            s += "mck=%s,\n" % (self._mck,)
        return s + "mode=%u,\nbits=%u, format=%u,\nrate=%d, ibuf=%d)" % (
            self._mode, self._bits, self._fmt, self._rate, self._ibuf)

    # -- the clock -----------------------------------------------------------
    # Hot paths keep every function's locals + value stack within 11 words:
    # MicroPython heap-allocates the call frame of bigger functions on every
    # call. Instance attributes (_off, _end) serve as scratch registers.
    def _clocked(self, now):
        """Frames clocked from init to `now`: rate·t, or with --clock-ppm N
        rate·(1 + N/10⁶)·t, integer and exact to a frame (small ints only:
        a = t·rate fits for years, the correction term for weeks)."""
        a = _ticks_diff(now, self._t0) * self._rate
        if _ppm:
            a += (a // 1000) * _ppm // 1000
        return a // 1000000

    def _tick(self, now):
        """Account the frames clocked since the last update."""
        n = self._clocked(now) - self._clk
        if n <= 0:
            return
        self._clk += n
        if self._tx:
            if self._en:
                _simesp32.tx_tick(self, n)
                return
            if self._hf:
                if self._nb:  # a non-blocking write moves at the DMA's interrupts
                    _simdma.tx_steps(self, n)
                else:
                    self._out_dma(n)
                return
            h = self._ring // self._fb
            if n <= h:
                self._ring -= n * self._fb
                _chan.clock(self._sid, n, 0)
            else:
                self._ring -= h * self._fb
                n -= h
                if self._started:
                    self._underrun(n)
                _chan.clock(self._sid, h, n)
        else:
            if self._rxh:
                _simdma.rx_halves(self, n)
                return
            if self._en:
                _simesp32.rx_tick(self, n)
                return
            if self._lost_n:
                self._rx_lost(n)
                return
            self._rx_fill(n)

    def _out_dma(self, n):
        """n frames clocked out of the two DMA halves (rp2, stm32, mimxrt), in constant time
        however many halves the tick spans (the board's CPU does none of this: its DMA does).
        At the end of each half the port refills it (feed_dma): the ring's next half if the ring
        holds at least 128 bytes (SIZEOF_HALF_DMA_BUFFER_IN_BYTES, also for mono), else zeros;
        it plays after the other half. (_dd, _dz: data then zero frames to report.)"""
        self._dd = 0
        self._dz = 0
        k = self._hf - (self._clk - n) % self._hf  # frames left of the half playing at the start
        if n < k:
            self._play(self._h0, n)
        else:
            self._play(self._h0, k)
            self._halves(n - k)
        if self._dd or self._dz:
            _chan.clock(self._sid, self._dd, self._dz)

    def _halves(self, n):
        """n frames past the first half boundary of a tick: the next half, then the halves fed
        at each boundary (data while the ring lasts, then zeros)."""
        m = n // self._hf  # whole halves after the first boundary: m + 1 boundaries, m + 1 feeds
        d = self._feeds(m + 1, self._clk - n)  # of them data
        self._play(self._h1, n if n < self._hf else self._hf)
        n -= self._hf
        if n > 0:
            self._play(1, n if n < d * self._hf else d * self._hf)
            n -= d * self._hf
            if n > 0:
                self._play(self._hz, n)
        # now playing: half m of (next, feed 1, feed 2, ...); the next after it: half m + 1
        self._h0 = self._h1 if m == 0 else 1 if m <= d else self._hz
        self._h1 = 1 if m + 1 <= d else self._hz

    def _feeds(self, b, at):
        """b feeds at the half boundaries from frame `at` on: how many take a half of the ring
        (it holds 128 bytes), the rest zeros (_hz: -1 an underrun once audio has played, else 0)."""
        d = 0
        if self._ring >= 128:
            d = (self._ring - 128) // self._hb + 1
            if d > b:
                d = b
            self._ring -= d * self._hb
            if self._first < 0:
                self._first = at + self._hf
        self._hz = -1 if self._first >= 0 else 0
        return d

    def _play(self, kind, k):
        """k frames of a half: audio (kind 1) or zeros (an underrun where kind is -1)."""
        if k <= 0:
            return
        if kind > 0:
            self._under = False
            if self._dz:
                _chan.clock(self._sid, self._dd, self._dz)
                self._dd = 0
                self._dz = 0
            self._dd += k
        else:
            if kind < 0:
                self._underrun(k)
            self._dz += k

    def _rx_fill(self, n):
        """n frames clocked on RX enter the ring while there is room."""
        # _grace: room a read in progress makes by taking bytes as they come
        h = (self._cap + self._grace - self._ring) // self._fb
        if n <= h:
            self._ring += n * self._fb
            self._pfill += n
        else:
            self._ring += h * self._fb
            self._pfill += h
            self._overrun(n - h)

    def _rx_lost(self, n):
        """n frames clocked on RX while frames _lost_at.._lost_at+_lost_n-1 are to
        be lost (sim --loopback drop=; again every _lost_every frames): they never
        enter the ring, as in an RX DMA overflow. Each loss counts as one overrun."""
        a = self._clk - n  # first frame of this tick
        while n > 0 and self._lost_n and a + n > self._lost_at:
            if a < self._lost_at:
                self._rx_fill(self._lost_at - a)
                n -= self._lost_at - a
                a = self._lost_at
            k = self._lost_at + self._lost_n - a  # frames of the loss still to come
            if k > n:
                k = n
            if k > 0:
                if a == self._lost_at:
                    self._n_over += 1
                self._n_over_f += k
                self._pdrop += k
                n -= k
                a += k
            if n > 0:  # past the loss: fill and drop records keep their order
                if self._lost_every:
                    self._lost_at += self._lost_every
                else:
                    self._lost_n = 0
                if self._pdrop:
                    _chan.rx(self._sid, self._pfill, self._pdrop, None, 0)
                    self._pfill = 0
                    self._pdrop = 0
        if n > 0:
            self._rx_fill(n)

    def _underrun(self, z):
        if not self._under:
            self._under = True
            self._n_under += 1
        self._n_under_f += z

    def _overrun(self, d):
        self._pdrop += d
        if not self._over:
            self._over = True
            self._n_over += 1
        self._n_over_f += d

    def _wake_at(self, frames):
        """ticks_us() when `frames` more frames will have been clocked."""
        r = self._rate
        d = ((self._clk + frames) * 1000000 + r - 1) // r
        if _ppm:  # the clock runs 1 + ppm/10⁶ times as fast: sooner (a µs late rather than early)
            d = d - d * _ppm // (1000000 + _ppm) + 1
        return _ticks_add(self._t0, d)

    def _tx_wait_frames(self, rem):
        """Frames to clock before min(rem, chunk) bytes fit (0: they fit now)."""
        if rem > self._chunk:
            rem = self._chunk
        lim = self._cap - self._ring % self._fb  # most room the ring can offer
        if rem > lim:
            rem = lim
        rem -= self._cap - self._ring  # bytes still missing
        if rem <= 0:
            return 0
        if self._hf:  # the ring drains a half at the end of each DMA half
            return (self._clk // self._hf + (rem + self._hb - 1) // self._hb) * self._hf - self._clk
        return (rem + self._fb - 1) // self._fb

    def _rx_wait_frames(self, need):
        """Frames to clock before the ring holds `need` bytes (0: it does)."""
        if self._ring >= need:
            return 0
        if self._rxh:
            return _simdma.rx_wait_frames(self, need)
        if self._en:
            return _simesp32.rx_wait_frames(self, need)
        return (need - self._ring) // self._fb

    def _span(self, ln, a, b):
        """write(buf[, max_len]) / write(buf, off, max_len) as the stream
        methods read them: sets _off/_end, returns the byte count."""
        off = 0
        if b >= 0:
            off = a if a < ln else ln
            ln -= off
            if b < ln:
                ln = b
        elif 0 <= a < ln:
            ln = a
        self._off = off
        self._end = off + ln
        return ln

    def _accept(self, buf, k):
        """k bytes of buf from _off enter the TX ring."""
        _chan.tx(self._sid, buf, self._off, k)
        self._ring += k
        self._off += k
        self._started = True
        if not self._hf:  # (with DMA halves the spell ends when audio reaches the pins)
            self._under = False

    def _take(self, buf, k):
        """Read k bytes (whole frames) from the ring head into buf[0:k]."""
        _chan.rx(self._sid, self._pfill, self._pdrop, buf, k)
        self._pfill = 0
        self._pdrop = 0
        self._ring -= k
        self._over = False

    def _take_at(self, buf, off, k):
        if off:
            # only for buffers larger than the ring: a slice allocates
            self._take(memoryview(buf)[off:], k)
        else:
            self._take(buf, k)

    # -- streams -------------------------------------------------------------
    def write(self, buf, a=-1, b=-1):
        if _port.npend:
            _service_all(_ticks_us())
        if not self._tx or not self._live:
            raise OSError(_EPERM)
        if self._span(_nbytes(buf), a, b) <= 0:
            return 0
        if self._en:
            if self._io == _BLOCKING:
                return _simesp32.write_blocking(self, buf)
            if self._io == _ASYNCIO:
                return _simesp32.write_now(self, buf)
        if self._io == _BLOCKING:
            return self._write_blocking(buf)
        if self._io == _NON_BLOCKING:
            return self._start_nb(buf)
        # asyncio: take what fits now
        self._tick(_ticks_us())
        a = self._cap - self._ring
        b = self._end - self._off
        if a > b:
            a = b
        if a > 0:
            self._accept(buf, a)
            return a
        return 0

    def _write_blocking(self, buf):
        n = self._end - self._off
        t = _ticks_us()
        while True:
            self._tick(t)
            k = self._cap - self._ring
            if k > 0:
                if k > self._end - self._off:
                    k = self._end - self._off
                self._accept(buf, k)
                if self._off >= self._end:
                    return n
            k = self._tx_wait_frames(self._end - self._off)
            if k:
                # The ring is accounted at the instant room comes, not when the sleep
                # returned: the port's loop moves the next bytes at once, and whatever
                # kept this process from running then was the host, not the board.
                t = self._wake_at(k)
                _wait_ring(t)

    def readinto(self, buf, nb=-1):
        if _port.npend:
            _service_all(_ticks_us())
        if self._tx or not self._live:
            raise OSError(_EPERM)
        n = _nbytes(buf)
        if 0 <= nb < n:
            n = nb
        if n % self._fb:
            raise OSError(_EINVAL)
        if n == 0:
            return 0
        self._off = 0
        self._end = n
        if self._io == _BLOCKING:
            return self._read_blocking(buf)
        if self._io == _NON_BLOCKING:
            return self._start_nb(buf)
        # asyncio: whatever whole frames are there now
        if self._en:
            n = _simesp32.read_now(self, n)
        else:
            self._tick(_ticks_us())
        if n > self._ring:
            n = self._ring
        if n > 0 or self._pfill or self._pdrop:
            self._take(buf, n)
        return n

    def _read_blocking(self, buf):
        n = self._end
        self._tick(_ticks_us())  # what came before the call (may overrun)
        if self._en:  # esp32: the call takes each buffer as it ends
            self._grace = n
            _simesp32.gather(self)
        while self._ring < n:
            t = self._wake_at(self._rx_wait_frames(n))
            _wait_ring(t)
            # A real port copies out of the ring while it waits, so frames arriving
            # during the call are not lost (a buffer larger than the ring too: taken
            # whole at the end, in one piece, allocating nothing); the call ends when the
            # last one came (the ring's schedule, not when this process ran again: see
            # _write_blocking).
            self._grace = n
            self._tick(t)
            self._grace = 0
        self._grace = 0
        self._take(buf, n)
        return n

    def ioctl(self, req, arg):
        if _port.npend:
            _service_all(_ticks_us())
        if req != 3:  # MP_STREAM_POLL
            return -_EINVAL
        if self._io != _ASYNCIO:
            self._stop_nb()  # a pending non-blocking transfer is abandoned
            self._io = _ASYNCIO  # as on the ports: ioctl() means asyncio is in use
        if not self._live:
            return 0
        self._tick(_ticks_us())
        req = 0
        if arg & 1:  # MP_STREAM_POLL_RD
            if self._tx:
                return -_EPERM
            # esp32: extmod's dma_buffer_status, which the DMA's callbacks set
            if (not self._full) if self._en else self._ring >= self._chunk:
                req |= 1
        if arg & 4:  # MP_STREAM_POLL_WR
            if not self._tx:
                return -_EPERM
            if (not self._full) if self._en else self._cap - self._ring >= self._chunk:
                req |= 4
        return req

    def irq(self, handler):
        if handler is not None and not callable(handler):
            raise ValueError("invalid callback")
        self._stop_nb()
        self._cb = handler
        self._io = _BLOCKING if handler is None else _NON_BLOCKING
        return None

    # -- non-blocking work ("the DMA interrupt") -------------------------------
    def _start_nb(self, buf):
        self._tick(_ticks_us())  # what came before the call (may overrun)
        if not self._nb:
            _port.npend += 1
        self._nb = True
        self._nb_buf = buf
        if not self._tx:
            self._grace = self._end  # the "DMA interrupt" copies out as data comes
        self._service(_ticks_us())
        return self._end - (0 if self._tx else self._off)

    def _stop_nb(self):
        if self._nb:
            self._nb = False
            self._nb_buf = None
            self._grace = 0
            _port.npend -= 1

    def _service(self, now):
        self._tick(now)
        if not self._nb:
            return
        if self._tx:
            k = self._cap - self._ring
            if k > self._end - self._off:
                k = self._end - self._off
            if self._en:  # esp32: the port's task writes with portMAX_DELAY
                _simesp32.fill(self, self._nb_buf)
            elif k > 0 and not self._hf:  # (with DMA halves: at their interrupts, _simdma)
                self._accept(self._nb_buf, k)
        else:
            if self._en:
                _simesp32.gather(self)
            now = self._end - self._off
            if self._ring >= now or (now > self._cap and self._ring >= self._chunk):
                if now > self._ring:
                    now = self._ring
                self._take_at(self._nb_buf, self._off, now)
                self._off += now
        if self._off >= self._end:
            self._stop_nb()
            if self._cb is not None:
                try:
                    _mp.schedule(self._cb, self)
                except RuntimeError:
                    pass  # schedule queue full: the ports drop it too

    def _nb_wait(self, now):
        """us until this object's non-blocking work can progress."""
        if self._tx:
            if self._en:
                f = _simesp32.wait_frames(self) if self._off < self._end else 0
            elif self._hf:
                f = _simdma.nb_wait_frames(self) if self._off < self._end else 0
            else:
                f = self._tx_wait_frames(self._end - self._off)
        else:
            f = self._end - self._off
            f = self._rx_wait_frames(f if f <= self._cap else self._chunk)
        if not f:
            return 0
        f = _ticks_diff(self._wake_at(f), now)
        return f if f > 0 else 0

    # -- sim-only ----------------------------------------------------------------
    def _sim_stats(self):
        """Sim only (not on real boards): the session's counters."""
        if self._live:
            self._tick(_ticks_us())
        return {
            "sid": self._sid, "live": self._live, "frames": self._clk, "t0": self._t0,
            "ring_bytes": self._ring, "ring_capacity": self._cap,
            "underruns": self._n_under, "underrun_frames": self._n_under_f,
            "overruns": self._n_over, "overrun_frames": self._n_over_f,
            "discarded_frames": self._discarded,
            "dma_half": self._hf, "first_frame": self._first,
            "dma_bufs": self._en, "dma_buf_frames": _simesp32.F if self._en else 0,
        }

    @staticmethod
    def shift(*args, **kw):
        if args:
            raise TypeError("extra positional arguments given")
        for n in ("buf", "bits", "shift"):
            if n not in kw:
                raise TypeError("'%s' argument required" % n)
        if len(kw) > 3:
            raise TypeError("extra keyword arguments given")
        buf = kw["buf"]
        bits = _get_int(kw["bits"])
        sh = _get_int(kw["shift"])
        mv = memoryview(buf)  # TypeError for objects without the buffer protocol
        if bits == 16:
            _shift16(buf, len(mv) // 2, sh)
        elif bits == 32:
            _shift32(buf, len(mv) // 4, sh)
        else:
            raise ValueError("invalid bits")


_PIN_ARGS = (("sck", "SCK"), ("ws", "WS"), ("sd", "SD"))


def _map_find(pmap, pad, fn, i2s_id):
    """mimxrt lookup_gpio(): the first entry of the board's pad table (I2SRules.pin_map)
    with this pad, function and bus id; None if there is none."""
    for e in pmap:
        if e[3] == pad and e[1] == fn and e[0] == i2s_id:
            return e
    return None


def _af_type(pmap, pad, i2s_id):
    """stm32 pin_find_af(pin, AF_FN_I2S, id): the type of the pad's first I2S alternate
    function on this bus; None where the pad has none (the port then reads its type through
    a NULL pointer, which never matches)."""
    for e in pmap:
        if e[3] == pad and e[0] == i2s_id:
            return e[1]
    return None


def _check_pins(vals, i2s_id, tx):
    """The pins of I2S(i2s_id, sck=, ws=, sd=[, mck=]) checked as the port checks them, in
    its order and words: (sck, ws, sd, mck) pad ids. Sources: i2scli/sim/i2s_pins.py."""
    rules = _port.rules
    fam = _port.family
    pmap = rules.get("pin_map")
    got = []
    if fam == "stm32":
        # ports/stm32/machine_i2s.c: Pin objects only; each pad's first I2S AF on the bus
        for n, label in _PIN_ARGS:
            p = vals[n]
            if not isinstance(p, Pin):
                raise ValueError("%s not a Pin type" % label)
            if pmap is not None and _af_type(pmap, p._id, i2s_id) != n:
                raise ValueError("invalid %s pin" % label)
            got.append(p._id)
        got.append(None)
        return got
    if fam == "mimxrt" and pmap is not None:
        # ports/mimxrt/machine_i2s.c: pin_find() then lookup_gpio() per pin; the entry's
        # mode matters for SD only (for SCK it picks the SAI's sync mode)
        for n, label in _PIN_ARGS:
            p = _pin_find(vals[n])
            e = _map_find(pmap, p, n, i2s_id)
            if e is None or (n == "sd" and e[2] != ("tx" if tx else "rx")):
                raise ValueError("invalid %s pin" % label)
            got.append(p)
        m = vals.get("mck")
        if m is not None:
            m = _pin_find(m)
            if _map_find(pmap, m, "mck", i2s_id) is None:
                raise ValueError("invalid MCK pin")
        got.append(m)
        return got
    # rp2, esp32: any pin the port's Pin takes
    for n, _ in _PIN_ARGS:
        got.append(_pin_find(vals[n]))
    if rules.get("ws_is_sck_plus_1"):
        # rp2: SCK and WS are PIO side-set pins, which must be consecutive
        sck = got[0]
        ws = got[1]
        if not (isinstance(sck, int) and isinstance(ws, int) and ws == sck + 1):
            raise ValueError("invalid ws (must be sck+1)")
    m = vals.get("mck")
    got.append(None if m is None else _pin_find(m))
    return got


def _check_id(i2s_id):
    if i2s_id not in _port.rules["ids"]:
        if _port.family == "mimxrt":
            raise ValueError("I2S(%d) does not exist" % i2s_id)
        raise ValueError("invalid id")


def _shift_py(buf, n, sh, size):
    # portable fallback for builds without the viper emitter
    full = 1 << (size * 8)
    half = full >> 1
    i = 0
    while i < n:
        o = i * size
        v = int.from_bytes(buf[o:o + size], "little")
        if v >= half:
            v -= full
        v = v << sh if sh >= 0 else v >> -sh
        buf[o:o + size] = (v & (full - 1)).to_bytes(size, "little")
        i += 1


_shift16 = None
_shift32 = None
try:
    exec(
        "@micropython.viper\n"
        "def _shift16(buf, n: int, sh: int):\n"
        "    p = ptr16(buf)\n"
        "    i = 0\n"
        "    while i < n:\n"
        "        v = int(p[i])\n"
        "        if v & 0x8000:\n"
        "            v = v - 0x10000\n"
        "        if sh >= 0:\n"
        "            v = v << sh\n"
        "        else:\n"
        "            v = v >> (0 - sh)\n"
        "        p[i] = v\n"
        "        i += 1\n"
        "@micropython.viper\n"
        "def _shift32(buf, n: int, sh: int):\n"
        "    p = ptr32(buf)\n"
        "    i = 0\n"
        "    while i < n:\n"
        "        v = int(p[i])\n"
        "        if v & 0x80000000:\n"
        "            v = v - 0x100000000\n"
        "        if sh >= 0:\n"
        "            v = v << sh\n"
        "        else:\n"
        "            v = v >> (0 - sh)\n"
        "        p[i] = v\n"
        "        i += 1\n",
        globals(),
    )
except Exception:
    pass
if _shift16 is None:
    def _shift16(buf, n, sh):
        _shift_py(buf, n, sh, 2)

    def _shift32(buf, n, sh):
        _shift_py(buf, n, sh, 4)


def configure(profile):
    """The port's I2S rules and the simulator's options; the class board code gets, or None
    where the port has no machine.I2S."""
    global _lost, _ppm, _stats
    _lost = None
    _ppm = 0
    try:
        import _simcfg

        _ppm = int((_simcfg.cfg or {}).get("clock_ppm") or 0)
        lb = (_simcfg.cfg or {}).get("loopback") or {}
        if lb.get("drop"):
            d = lb["drop"]
            _lost = (lb["rx"], d[0], d[1], d[2] if len(d) > 2 else None)
        _stats = (_simcfg.cfg or {}).get("sim_stats", True)
    except ImportError:
        pass
    if not _stats and hasattr(_I2S, "_sim_stats"):
        # sim --sim-stats no: board code finds no clock report, as on a real board
        delattr(_I2S, "_sim_stats")
    if _port.rules is None:
        return None
    machine_str = profile.get("machine") or ""
    key = _port.family
    if key == "stm32":
        key = "stm32h7" if "H7" in machine_str else "stm32f4"
    rx, tx = _I2S_MODES.get(key, (0, 1))
    _I2S.RX = rx
    _I2S.TX = tx
    _I2S.MONO = 0
    _I2S.STEREO = 1
    return _I2S


_port.service = _service_all
_simesp32.wait_ring = _wait_ring
_simesp32.now = _ticks_us
