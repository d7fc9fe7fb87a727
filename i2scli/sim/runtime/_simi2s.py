# The virtual board's machine.I2S (MicroPython code, runs inside the unix port): the port's
# argument checks and texts, real-time ring and DMA timing (machine.py's header says how).
import utime as _t
import io as _io
import _chan
import _simdma
import _simesp32
import _simi2sargs
import _simloss
import _simnb
import _simshift
from _simnb import service_all as _service_all, sleep_until as _sleep_until, wait_ring as _wait_ring  # noqa: F401
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

_active = _simnb.active  # initialised I2S objects
_by_id = {}  # bus id -> object (the ports keep one object per bus)
_port.npend = 0  # objects with non-blocking work pending
_next_sid = 0
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
        _simi2sargs.check_id(i2s_id)
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
        self._dd = 0  # scratch of _simdma.out_dma
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
        fam = _port.family
        i2s_id = self._id
        RX = _I2S.RX
        TX = _I2S.TX
        mode, bits, fmt, rate, ibuf, sck, ws, sd, mck = _simi2sargs.parse(pos, kw, _I2S, i2s_id)

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
        if _simloss.lost is not None and mode == RX:
            _simloss.arm(self, i2s_id, rate)
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
        _simnb.stop(self)
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
                    _simdma.out_dma(self, n)
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
                _simloss.rx(self, n)
                return
            self._rx_fill(n)

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
            return _simnb.start(self, buf)
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
            return _simnb.start(self, buf)
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
            _simnb.stop(self)  # a pending non-blocking transfer is abandoned
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
        _simnb.stop(self)
        self._cb = handler
        self._io = _BLOCKING if handler is None else _NON_BLOCKING
        return None

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

    shift = staticmethod(_simshift.shift)


def configure(profile):
    """The port's I2S rules and the simulator's options; the class board code gets, or None
    where the port has no machine.I2S."""
    global _ppm, _stats
    _simloss.lost = None
    _ppm = 0
    try:
        import _simcfg

        _ppm = int((_simcfg.cfg or {}).get("clock_ppm") or 0)
        lb = (_simcfg.cfg or {}).get("loopback") or {}
        if lb.get("drop"):
            d = lb["drop"]
            _simloss.lost = (lb["rx"], d[0], d[1], d[2] if len(d) > 2 else None)
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
