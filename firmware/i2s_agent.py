# i2s agent: runs on the board, streams audio between the host and machine.I2S.
# Protocol: docs/protocol.md. Plain MicroPython; the streaming loops allocate nothing
# (preallocated buffers, fixed memoryviews, readinto, integer maths only).
import sys
import time
import gc
import micropython
from micropython import const

try:
    import ujson as json
except ImportError:
    import json

VERSION = "dev"  # the host replaces this with a hash of the source when it uploads/installs
PROTO = const(1)

_S0 = const(0xA5)
_S1 = const(0x5A)
_CRC = const(0x80)
_HELLO = const(1)
_START = const(2)
_READY = const(3)
_DATA = const(4)
_CREDIT = const(5)
_END = const(6)
_SUMMARY = const(7)
_ERROR = const(8)
_ABORT = const(9)
_PROBE = const(10)
_KEEPALIVE = const(11)
_SWITCH = const(12)
_PHASE = const(13)
_BAUD = const(14)
_TIMEOUT = const(-1)
_BAD = const(-2)
_HDR = const(7)
_BIG = const(0x3FFFFFFF)

try:
    from binascii import crc32
except ImportError:
    crc32 = None

# Input buffer of each port's REPL stream: credits never exceed it (docs/sim.md has sources).
_INBUF = {"esp32": 256, "esp8266": 128, "rp2": 512, "mimxrt": 512, "samd": 512, "nrf": 256,
          "pyboard": 1024, "linux": 32768}


class Link:
    """Frames over the REPL stream: the fastest input path the port has, no allocation."""

    def __init__(self):
        self.vcp = None
        self.poll = None
        try:
            import pyb

            self.vcp = pyb.USB_VCP()
            self.vcp.init(flow=pyb.USB_VCP.RTS)  # hold the host back instead of dropping
            self.vcp.setinterrupt(-1)
        except (ImportError, AttributeError, ValueError, TypeError):
            self.vcp = None
        micropython.kbd_intr(-1)  # 0x03 is audio data now, not Ctrl-C
        self.inp = sys.stdin.buffer
        self.out = sys.stdout.buffer
        if self.vcp is None:
            import select

            self.poll = select.poll()
            self.poll.register(self.inp, select.POLLIN)
        self.inbuf = _INBUF.get(sys.platform, 256)
        self.crc = crc32 is not None
        self.hdr = bytearray(_HDR)
        self.hdr[0] = _S0
        self.hdr[1] = _S1
        self.rest = memoryview(self.hdr)[2:]  # header after the sync bytes
        self.one = bytearray(1)
        self.crc4 = bytearray(4)
        self.deadline = 0
        self.skipped = 0
        self.obuf = bytearray(_HDR + 4)
        self.tx_seq = 0
        self.rx_seq = -1
        self.crc_errors = 0
        self.resyncs = 0
        self.seq_gaps = 0
        self.consumed = 0  # bytes taken out of the input buffer since the last grant
        self.max_payload = 0
        self.pbuf = None
        self.plen = 0
        self.baud = 0  # the REPL UART's rate when we changed it (0: as we found it)
        self.baud0 = 0  # the rate to put back on every way out

    def drain(self, quiet_ms=50):
        """Discard input until the host has been quiet a while, so nothing it sent after our
        last frame lands in the REPL as code."""
        while self.wait(quiet_ms):
            if not self._read(self.one, 1):
                return  # end of input (only a virtual board's pipe ends)

    def close(self):
        try:
            self.set_baud(self.baud0)  # the REPL, mpremote and the next i2s expect the usual rate
        except Exception:
            pass
        micropython.kbd_intr(3)
        if self.vcp is not None:
            try:
                self.vcp.setinterrupt(3)
            except Exception:
                pass

    def set_baud(self, rate):
        """Re-time the REPL UART (esp32: machine.UART(0) is the REPL's, since v1.19). Its
        init sets the divider at once, so the TX FIFO (128 bytes) is let out first."""
        if not rate or rate == (self.baud or self.baud0):
            return
        time.sleep_ms(1280000 // (self.baud or self.baud0 or 115200) + 4)
        from machine import UART

        UART(0, baudrate=rate)
        self.baud = rate

    def fresh(self):
        """Counters start again: a failed rate change leaves garbage that is not the stream's."""
        self.rx_seq = -1
        self.crc_errors = 0
        self.resyncs = 0
        self.seq_gaps = 0
        self.skipped = 0

    # -- waiting and reading --------------------------------------------------------------
    def wait(self, ms):
        """True when input is there, False after ms."""
        if self.vcp is not None:
            t0 = time.ticks_ms()
            while not self.vcp.any():
                if time.ticks_diff(time.ticks_ms(), t0) >= ms:
                    return False
                time.sleep_ms(1)
            return True
        for _ in self.poll.ipoll(ms):
            return True
        return False

    def _read(self, buf, n):
        if self.vcp is not None:
            got = self.vcp.recv(buf, timeout=2000) if n == len(buf) else self._vcp_partial(buf, n)
        else:
            got = self.inp.readinto(buf, n)
        self.consumed += n
        return got

    def _vcp_partial(self, buf, n):
        return self.vcp.recv(memoryview(buf)[:n], timeout=2000)

    def set_payload(self, size, spare=False):
        """Preallocate the receive buffer: payload + CRC trailer (and a second one for
        double buffering, which swap() exchanges without allocating)."""
        self.max_payload = size
        self.pbuf = bytearray(size + 4)
        self.pfull = memoryview(self.pbuf)[:size]
        if spare:
            self.pbuf2 = bytearray(size + 4)
            self.pfull2 = memoryview(self.pbuf2)[:size]

    def swap(self):
        self.pbuf, self.pbuf2 = self.pbuf2, self.pbuf
        self.pfull, self.pfull2 = self.pfull2, self.pfull

    # Per-frame methods stay small: MicroPython puts a call frame on the heap once its
    # locals and stack pass 11 words, so each does one thing with few locals.
    def read_frame(self, ms):
        """Next good frame's type (payload in self.pbuf[:self.plen]), or _TIMEOUT when no
        good frame starts within ms. Sync bytes are read one at a time with a deadline, so
        stray bytes (a terminal's Ctrl-C, REPL chatter) can never leave it blocked."""
        self.deadline = time.ticks_add(time.ticks_ms(), ms)
        if not self._sync():
            return _TIMEOUT
        self._read(self.rest, _HDR - 2)
        while True:
            t = self._frame()
            if t >= 0:
                return t
            self.resyncs += 1
            if not self._slide():
                return _TIMEOUT

    def _slide(self):
        """Resync: drop the header's first byte and take one more, until it starts with sync."""
        h = self.hdr
        while True:
            i = 0
            while i < _HDR - 1:
                h[i] = h[i + 1]
                i += 1
            b = self._byte()
            if b < 0:
                return False
            h[_HDR - 1] = b
            if h[0] == _S0 and h[1] == _S1:
                return True

    def _left(self):
        return max(0, time.ticks_diff(self.deadline, time.ticks_ms()))

    def _byte(self):
        if not self.wait(self._left()) or not self._read(self.one, 1):
            return -1
        return self.one[0]

    def _sync(self):
        """Read up to and including the sync bytes A5 5A; False at the deadline. Once bytes
        flow, the rest of a frame in flight gets a short grace (even from read_frame(0))."""
        b = self._byte()
        if b >= 0 and self._left() < 200:
            self.deadline = time.ticks_add(time.ticks_ms(), 200)
        while b >= 0:
            if b == _S0:
                b = self._byte()
                if b == _S1:
                    self.hdr[0] = _S0
                    self.hdr[1] = _S1
                    return True
            else:
                if self.rx_seq >= 0 or b != 0x0D:
                    self.skipped += 1
                b = self._byte()
        return False

    def _frame(self):
        h = self.hdr
        if (~(h[2] + h[3] + h[4] + h[5])) & 0xFF != h[6]:
            return _BAD
        n = h[4] | (h[5] << 8)
        if n > self.max_payload or not self._payload(h[2], n):
            return _BAD
        return h[2] & 0x7F

    def _payload(self, t, n):
        if t & _CRC and n == 0:
            # control frames (END, KEEPALIVE): the CRC of nothing is 0; a 4-byte buffer of
            # their own keeps the VCP read allocation-free
            self._read(self.crc4, 4)
            if self.crc and self._u32(self.crc4, 0) != 0:
                self.crc_errors += 1
                return False
        elif t & _CRC:
            self._read(self.pbuf, n + 4)
            if self.crc and not self._crc_ok(n):
                self.crc_errors += 1
                return False
        elif n:
            self._read(self.pbuf, n)
        self.plen = n
        self._seq(self.hdr[3])
        return True

    def _crc_ok(self, n):
        if n == 0:
            return self._u32(self.pbuf, 0) == 0  # crc32 of nothing, without a slice
        if n == self.max_payload:
            return crc32(self.pfull) == self._u32(self.pbuf, n)
        return crc32(memoryview(self.pbuf)[:n]) == self._u32(self.pbuf, n)

    def _u32(self, p, i):
        return p[i] | (p[i + 1] << 8) | (p[i + 2] << 16) | (p[i + 3] << 24)

    def _seq(self, seq):
        if self.rx_seq >= 0 and seq != (self.rx_seq + 1) & 0xFF:
            self.seq_gaps += 1
        self.rx_seq = seq

    # -- writing ------------------------------------------------------------------------------
    def _head(self, buf, t, n):
        if self.crc:
            t |= _CRC
        buf[0] = _S0
        buf[1] = _S1
        buf[2] = t
        buf[3] = self.tx_seq
        buf[4] = n & 0xFF
        buf[5] = n >> 8
        buf[6] = (~(t + self.tx_seq + buf[4] + buf[5])) & 0xFF
        self.tx_seq = (self.tx_seq + 1) & 0xFF

    def _trailer(self, buf, off, c):
        buf[off] = c & 0xFF
        buf[off + 1] = (c >> 8) & 0xFF
        buf[off + 2] = (c >> 16) & 0xFF
        buf[off + 3] = (c >> 24) & 0xFF

    def send(self, t, payload=b""):
        """A control frame (allocates: not for the audio path)."""
        n = len(payload)
        ob = self.obuf
        self._head(ob, t, n)
        self.out.write(ob, 0, _HDR)
        if n:
            self.out.write(payload)
        if self.crc:
            self._trailer(ob, _HDR, crc32(payload))
            self.out.write(ob, _HDR, 4)

    def send_json(self, t, obj):
        self.send(t, json.dumps(obj).encode())

    def frame_buffer(self, payload):
        """A buffer for sending DATA frames built in place: header, payload, CRC."""
        buf = bytearray(_HDR + payload + 4)
        return buf, memoryview(buf)[_HDR:_HDR + payload]

    def send_data(self, buf, view, n):
        """Send the DATA frame in buf whose payload (view) holds n bytes."""
        self._head(buf, _DATA, n)
        if self.crc:
            self._trailer(buf, _HDR + n, crc32(view))
            self.out.write(buf, 0, _HDR + n + 4)
        else:
            self.out.write(buf, 0, _HDR + n)

    def send_plain(self, buf, n):
        """A DATA frame built in place in buf, without the CRC trailer: a coded payload, which
        carries a checksum of the audio it decodes to."""
        crc = self.crc
        self.crc = False
        self._head(buf, _DATA, n)
        self.crc = crc
        self.out.write(buf, 0, _HDR + n)

    def grant(self, force=False):
        """Give the bytes read since the last grant back to the host as credit."""
        c = self.consumed
        # a quarter window: with frames of up to half the window, the host always has the
        # next frame's credit before the one in flight has been read (no stop-and-wait)
        if c and (force or c >= self.window >> 2):
            self.consumed = 0
            ob = self.obuf
            ob[0] = c & 0xFF
            ob[1] = (c >> 8) & 0xFF
            ob[2] = (c >> 16) & 0xFF
            ob[3] = (c >> 24) & 0xFF
            self._credit(ob)

    def _credit(self, ob):
        # header after the 4 credit bytes already in obuf[0:4]: build in self.hdr-like scratch
        cb = self.cbuf
        cb[7] = ob[0]
        cb[8] = ob[1]
        cb[9] = ob[2]
        cb[10] = ob[3]
        self._head(cb, _CREDIT, 4)
        if self.crc:
            self._trailer(cb, 11, crc32(self.cview))
            self.out.write(cb, 0, 15)
        else:
            self.out.write(cb, 0, 11)


class Meter:
    """TX: tracks bus frames against time to estimate underruns on the board, in integer ms
    with a once-a-second re-anchor so nothing outgrows a small int on 32-bit ports."""

    def __init__(self, rate, ring_frames):
        self.rate = rate
        self.ring = ring_frames
        self.t0 = 0
        self.base = 0
        self.started = False
        self.events = 0
        self.lost = 0

    def start(self, frames):
        self.t0 = time.ticks_ms()
        self.base = frames
        self.started = True

    def tx(self, written):
        """Before writing: frames played since the anchor beyond those written = underrun."""
        if not self.started:
            self.start(written)
            return
        now = time.ticks_ms()
        played = time.ticks_diff(now, self.t0) * self.rate // 1000
        ahead = written - self.base
        if played > ahead + self.rate // 200:  # more than 5 ms short
            self.events += 1
            self.lost += played - ahead
            self.t0 = now
            self.base = written
        elif ahead >= self.rate and played >= self.rate:
            self.t0 = time.ticks_add(self.t0, 1000)
            self.base += self.rate


# RX ring of each port in frames (docs/sim.md has the sources): the rp2, stm32 and mimxrt ring
# holds ibuf bytes of 8-byte frames whatever the format; esp32 keeps ibuf // 2048 (at least 2)
# DMA buffers of 256 frames. _RX_SLACK: frames a port holds beyond that in flight (a DMA half
# of 128 bytes; an esp32 DMA buffer), which an overrun check must allow for.
def rx_ring_frames(ibuf):
    if sys.platform == "esp32":
        return max(ibuf // 2048, 2) * 256
    return ibuf // 8


class RxMeter:
    """RX overruns as they happen, in frames. The bus fills the port's ring at `rate` while the
    agent empties it, so frames clocked beyond those read and those the ring can hold were
    lost. Checked before each read: then the ring holds at most `ring` frames, so a loss of
    more than `tol` frames is seen, however many frames the read takes (checked after a
    read, up to a payload of loss hid behind the room the read had just made). The clock is
    the agent's own (ticks_us), kept honest after each read: the ring cannot hold less than
    nothing (the bus runs fast), and once a second the least it held is taken as the bus
    running slow (at most 0.5 %). Integer maths on a clock re-anchored every second: small
    ints on 32-bit ports, nothing allocated. `at` keeps where the first 8 losses fell, in
    frames of the stream, so the host can tell them from any other damage."""

    def __init__(self, rate, ring):
        self.rate = rate
        self.ring = ring
        self.tol = (256 if sys.platform == "esp32" else 16) + rate // 2000 + 2
        self.t = 0  # anchor (ticks_us)
        self.e = 0  # frames the bus had put in the ring by the anchor, less those lost
        self.started = False
        self.over = False
        self.floor = _BIG
        self.events = 0
        self.lost = 0
        self.at = [0] * 8

    def _due(self, now):
        """Frames the bus has put in the ring by now, less those lost (expected reads)."""
        d = time.ticks_diff(now, self.t)
        while d >= 1000000:
            self.t = time.ticks_add(self.t, 1000000)
            self.e += self.rate
            d -= 1000000
            self._settle()
        r = self.rate
        return self.e + (d // 1000) * r // 1000 + (d % 1000) * r // 1000000

    def _settle(self):
        f = self.floor
        if 0 < f < _BIG:
            m = self.rate // 200
            self.e -= f if f < m else m
        self.floor = _BIG

    def before(self, read):
        """Before a read, `read` frames read so far: count what the ring could not hold."""
        now = time.ticks_us()
        if not self.started:
            self.started = True
            self.t = now
            self.e = read
            return
        b = self._due(now) - read - self.ring
        if b > self.tol:
            if not self.over:
                self.over = True
                if self.events < 8:
                    self.at[self.events] = read + self.ring
                self.events += 1
            self.lost += b
            self.e -= b
        else:
            self.over = False

    def after(self, read):
        """After a read, `read` frames read so far."""
        b = self._due(time.ticks_us()) - read
        if b < 0:
            self.e -= b
            b = 0
        if b < self.floor:
            self.floor = b

    def where(self):
        return self.at[:self.events if self.events < 8 else 8]


class Heap:
    """Bytes allocated over the steady-state frames: start() opens the window, mark() after
    each steady frame records where it stands, stop() closes it at the last mark. Uses
    micropython.mem_total where the port has it, else gc.mem_alloc() with collection held off."""

    def __init__(self):
        self.total = getattr(micropython, "mem_total", None)
        self.method = "mem_total" if self.total else "mem_alloc"
        if not self.total:
            self.total = gc.mem_alloc
        self.a = 0
        self.b = 0
        self.bytes = 0
        self.on = False

    def start(self):
        if self.method == "mem_alloc":
            gc.collect()
            gc.disable()
        self.a = self.total()
        self.b = self.a
        self.on = True

    def mark(self):
        self.b = self.total()

    def stop(self):
        if not self.on:
            return
        self.bytes = self.b - self.a
        if self.method == "mem_alloc":
            gc.enable()
        self.on = False


def _main_globals():
    try:
        import __main__  # the REPL's: where the host ran the coder for an installed agent

        return __main__.__dict__
    except Exception:
        return {}


_CODER_BITS = {"Decoder": 1, "Encoder": 2}


def _coder(name, load=True):
    """A wire coder class (firmware/wirecode.py, viper: Decoder for TX, Encoder for RX): the one
    the host ran in the REPL, or the installed module's, imported only for a stream that codes
    (native code takes RAM). With load=False: whether it is there at all."""
    for g in (globals(), _main_globals()):
        if name in g:
            return g[name]
    try:
        import os

        os.stat("/i2s_wirecode.mpy")
    except OSError:
        return None
    if not load:
        return True
    try:
        import i2s_wirecode

        return getattr(i2s_wirecode, name)
    except Exception:  # a .mpy for another firmware: raw frames
        return None


def _codec():
    """HELLO's `codec`: 1 = a decoder is there, 2 = an encoder, 3 = both."""
    return sum(bit for name, bit in _CODER_BITS.items() if _coder(name, False))


def _hello(link, source):
    try:
        import machine

        has_i2s = hasattr(machine, "I2S")
    except ImportError:
        has_i2s = False
    try:
        import os

        mach = os.uname().machine
    except Exception:
        mach = getattr(sys.implementation, "_machine", "?")
    io = ["blocking", "irq"]
    try:
        import asyncio  # noqa: F401

        io.append("asyncio")
    except ImportError:
        pass
    gc.collect()
    link.send_json(_HELLO, {
        "proto": PROTO, "agent": VERSION, "source": source, "platform": sys.platform,
        "machine": mach, "micropython": ".".join(str(v) for v in sys.implementation.version[:3]),
        "mem_free": gc.mem_free(), "i2s": has_i2s, "inbuf": link.inbuf, "crc": link.crc,
        "io": io, "vcp": link.vcp is not None, "codec": _codec(),
        "native": getattr(sys.implementation, "_mpy", 0) >> 10,  # 0: no viper (no wire coder)
    })


def _pin(p):
    from machine import Pin

    return Pin(p)


def _open_i2s(cfg, mode, pins=None):
    from machine import I2S

    pins = pins or cfg
    kw = {"sck": _as_pin(pins["sck"]), "ws": _as_pin(pins["ws"]), "sd": _as_pin(pins["sd"]),
          "mode": I2S.TX if mode == "tx" else I2S.RX, "bits": cfg["bits"],
          "format": I2S.STEREO if cfg["format"] == "stereo" else I2S.MONO,
          "rate": cfg["rate"], "ibuf": cfg["ibuf"]}
    if pins.get("mck") is not None:
        kw["mck"] = _as_pin(pins["mck"])
    return I2S(pins["id"], **kw)


def _as_pin(p):
    return p if hasattr(p, "value") else _pin(p)


def _pins(pins):
    """Pin objects made ahead of a switch, so the switch itself does only what it must."""
    out = dict(pins)
    for k in ("sck", "ws", "sd", "mck"):
        if out.get(k) is not None:
            out[k] = _pin(out[k])
    return out


class Stream:
    """One START..SUMMARY exchange."""

    def __init__(self, link, cfg):
        self.link = link
        self.cfg = cfg
        self.fb = cfg["bits"] // 8 * (2 if cfg["format"] == "stereo" else 1)
        self.payload = cfg["payload"]
        self.timeout = cfg.get("timeout_ms", 3000)
        self.frames = 0
        self.reason = "end"
        self.heap = Heap()
        if cfg["mode"] == "rx":
            self.meter = RxMeter(cfg["rate"], rx_ring_frames(cfg["ibuf"]))
        else:
            self.meter = Meter(cfg["rate"], cfg["ibuf"] // self.fb)
        self.timeline = []
        self.audio = None
        self.t_start = time.ticks_us()
        self.heap_first = 0
        self.heap_last = 0
        self.last = 0
        self.heap_frames = 0
        self.port = None  # the port's own xrun counts, where it has them
        # wire coding (START "code": 1): coded DATA frames carry no link CRC, the coder's own
        # checksum over the decoded audio guards them; raw ones keep the CRC
        self.coder = None
        self.code_us = 0
        self.coded = 0
        self.plain = 0
        self.code_errors = 0
        cls = _coder("Decoder" if cfg["mode"] == "tx" else "Encoder") if cfg.get("code") \
            and cfg["mode"] in ("tx", "rx") and cfg.get("io", "blocking") == "blocking" else None
        if cls:
            self.coder = cls(cfg["bits"], 2 if cfg["format"] == "stereo" else 1)

    def mark(self, step):
        self.timeline.append([step, time.ticks_us()])

    def summary(self, extra=None):
        link = self.link
        s = {"reason": self.reason, "frames": self.frames, "bytes": self.frames * self.fb,
             "underruns": self.meter.events if self.cfg["mode"] == "tx" else 0,
             "overruns": self.meter.events if self.cfg["mode"] == "rx" else 0,
             "lost_frames": self.meter.lost, "crc_errors": link.crc_errors,
             "resyncs": link.resyncs, "seq_gaps": link.seq_gaps, "heap_alloc": self.heap.bytes,
             "heap_frames": self.heap_frames, "heap_method": self.heap.method,
             "timeline": self.timeline, "elapsed_us": time.ticks_diff(time.ticks_us(), self.t_start)}
        if self.cfg["mode"] == "rx":
            s["overrun_at"] = self.meter.where()
        if self.port is not None:
            s["port_xruns"] = self.port
        if self.coder is not None:
            s["code"] = {"frames_coded": self.coded, "frames_raw": self.plain, "us": self.code_us,
                         "errors": self.code_errors}
        if extra:
            s.update(extra)
        return s

    def port_xruns(self):
        """Where the port counts xruns itself (the virtual board), its counts go beside the
        agent's own estimate: the host takes the larger, so nothing the port saw is missed."""
        st = getattr(self.audio, "_sim_stats", None)
        if st is not None:
            d = st()
            self.port = {k: d[k] for k in ("underruns", "underrun_frames", "overruns", "overrun_frames")}

    def host_poll(self):
        """Between RX chunks: take one host frame if there is one (END, ABORT, KEEPALIVE), and
        watch for a silent host. False when the stream must stop. Allocation-free."""
        link = self.link
        if link.wait(0):
            t = link.read_frame(0)
            link.grant()
            if t == _END or t == _ABORT:
                self.reason = "end" if t == _END else "abort"
                return False
            self.last = time.ticks_ms()
        elif time.ticks_diff(time.ticks_ms(), self.last) > self.timeout:
            self.reason = "timeout"
            return False
        return True

    def warmup(self):
        """DATA frames before the heap window opens: steady state starts once the DMA ring
        has filled (TX) or been drained (RX) twice, after every first-use allocation."""
        return 8 + 2 * self.cfg["ibuf"] // max(self.payload, 1)

    # -- TX: host DATA frames into I2S --------------------------------------------------------
    def tx(self):
        link = self.link
        audio = self.audio
        shift = self.cfg.get("shift", 0)
        bits = self.cfg["bits"]
        fb = self.fb
        meter = self.meter
        heap = self.heap
        P = self.payload
        coder = self.coder
        if coder is None:
            src = link.pbuf
            full = link.pfull
        else:  # coded frames are decoded into a buffer of their own
            src = bytearray(P)
            full = memoryview(src)
        warm = self.warmup()
        counted = 0
        self.mark("tx_start")
        while True:
            t = link.read_frame(self.timeout)
            link.grant()
            if t == _DATA:
                n = link.plen
                if coder is not None:
                    n = self._decode(coder, n, src)
                    if n <= 0:
                        continue  # damaged: counted, never played
                if n == P:
                    if shift:
                        audio.shift(buf=full, bits=bits, shift=shift)
                    meter.tx(self.frames)
                    audio.write(full)
                    heap.mark()
                    self.heap_last = self.frames + n // fb
                else:
                    heap.stop()
                    view = memoryview(src)[:n]
                    if shift:
                        audio.shift(buf=view, bits=bits, shift=shift)
                    meter.tx(self.frames)
                    audio.write(view)
                if self.frames == 0:
                    self.mark("first_audio")
                self.frames += n // fb
                counted += 1
                if counted == warm:
                    heap.start()
                    self.heap_first = self.frames
            elif t == _END:
                self.reason = "end"
                break
            elif t == _ABORT:
                self.reason = "abort"
                break
            elif t == _TIMEOUT:
                self.reason = "timeout"
                break
            elif t == _KEEPALIVE:
                pass
        heap.stop()
        self.heap_frames = self.heap_last - self.heap_first if heap.bytes or self.heap_last else 0
        if self.reason == "end":
            # play out: a ring of silence pushes the last audio onto the wire before deinit
            self.mark("drain")
            silence = bytearray(min(self.cfg["ibuf"], 4096))
            left = self.cfg["ibuf"] + len(silence)
            while left > 0:
                audio.write(silence)
                left -= len(silence)
        self.mark("tx_end")

    def _send_coded(self, view, n):
        """n bytes of audio as one coded DATA frame (raw-escaped, with CRC, when coding does not pay)."""
        t0 = time.ticks_us()
        m = self.coder.encode(view, n, self.cv)
        self.code_us += time.ticks_diff(time.ticks_us(), t0)
        if self.cb[_HDR]:
            self.coded += 1
            self.link.send_plain(self.cb, m)
        else:
            self.plain += 1
            self.link.send_data(self.cb, self.cr if m == len(self.cr) else memoryview(self.cb)[_HDR:_HDR + m], m)

    def _decode(self, coder, n, dst):
        """One coded DATA payload (link.pbuf[:n]) into dst; its length, or 0 when damaged."""
        t0 = time.ticks_us()
        got = coder.decode(self.link.pbuf, n, dst)
        self.code_us += time.ticks_diff(time.ticks_us(), t0)
        if got < 0:
            self.code_errors += 1
            self.link.crc_errors += 1  # lost audio, as a CRC error is: the host says so
            return 0
        if self.link.pbuf[0]:
            self.coded += 1
        else:
            self.plain += 1
        return got

    # -- RX: I2S into DATA frames ------------------------------------------------------------------
    def rx(self):
        link = self.link
        audio = self.audio
        fb = self.fb
        P = self.payload
        meter = self.meter
        heap = self.heap
        want = self.cfg.get("frames", 0)
        buf, view = link.frame_buffer(P)
        if self.coder is not None:  # the coded frame is built in a second buffer
            self.cb = bytearray(_HDR + P + 1 + 4)
            self.cv = memoryview(self.cb)[_HDR:]
            self.cr = memoryview(self.cb)[_HDR:_HDR + P + 1]  # a raw-escaped full frame, CRC'd
        discard = self.cfg.get("discard_frames", 0) * fb
        self.mark("rx_start")
        while discard > 0:  # word-clock alignment and stale DMA data: exactly
            n = min(discard, P)
            audio.readinto(view if n == P else memoryview(view)[:n])
            discard -= n
        self.mark("rx_kept")
        warm = self.warmup()
        counted = 0
        self.last = time.ticks_ms()
        P_frames = P // fb
        while True:
            if want and self.frames + P_frames > want:
                n = (want - self.frames) * fb
                if n <= 0:
                    self.reason = "frames"
                    break
                heap.stop()
                part = memoryview(buf)[_HDR:_HDR + n]
                meter.before(self.frames)
                audio.readinto(part)
                if self.coder is None:
                    link.send_data(buf, part, n)
                else:
                    self._send_coded(part, n)
                self.frames += n // fb
                self.reason = "frames"
                break
            meter.before(self.frames)
            audio.readinto(view)
            meter.after(self.frames + P_frames)
            if self.coder is None:
                link.send_data(buf, view, P)
            else:
                self._send_coded(view, P)
            self.frames += P_frames
            heap.mark()
            self.heap_last = self.frames
            counted += 1
            if counted == warm:
                heap.start()
                self.heap_first = self.frames
            if not self.host_poll():
                break
        heap.stop()
        self.heap_frames = self.heap_last - self.heap_first if heap.bytes or self.heap_last else 0
        self.mark("rx_end")

    # -- the seed's other transfer styles ----------------------------------------------------
    def _on_io(self, _):
        self.io_done = True

    def _io_wait(self):
        while not self.io_done:
            time.sleep_us(50)  # the callback runs from the scheduler between bytecodes
        self.io_done = False

    def tx_irq(self):
        """Non-blocking writes: the DMA takes one buffer while the next frame is read into
        the other; the callback says when the ring has taken it."""
        link, audio, fb, P = self.link, self.audio, self.fb, self.payload
        self.io_done = True
        self.cb = self._on_io  # bound once: no allocation per frame
        audio.irq(self.cb)
        busy = False
        self.mark("tx_start")
        while True:
            t = link.read_frame(self.timeout)
            link.grant()
            if t != _DATA:
                self.reason = "end" if t == _END else "abort" if t == _ABORT else "timeout"
                if t in (_END, _ABORT, _TIMEOUT):
                    break
                continue
            if busy:
                self._io_wait()
            n = link.plen
            audio.write(link.pfull if n == P else memoryview(link.pbuf)[:n])
            busy = True
            link.swap()
            self.frames += n // fb
        if busy:
            self._io_wait()
        audio.irq(None)
        self._play_out()
        self.mark("tx_end")

    def rx_irq(self):
        """Non-blocking reads into two buffers: one fills while the other is sent."""
        link, audio, fb, P = self.link, self.audio, self.fb, self.payload
        want = self.cfg.get("frames", 0)
        bufs = [link.frame_buffer(P), link.frame_buffer(P)]
        self.io_done = False
        self.cb = self._on_io
        audio.irq(self.cb)
        k = 0
        audio.readinto(bufs[0][1])
        self.mark("rx_start")
        self.last = time.ticks_ms()
        meter = self.meter
        while True:
            self._io_wait()
            meter.after(self.frames + P // fb)
            buf, view = bufs[k]
            k ^= 1
            meter.before(self.frames + P // fb)
            audio.readinto(bufs[k][1])  # the next one fills while this one goes out
            n = P if not want else min(P, (want - self.frames) * fb)
            link.send_data(buf, view if n == P else memoryview(view)[:n], n)
            self.frames += n // fb
            if want and self.frames >= want:
                self.reason = "frames"
                break
            if not self.host_poll():
                break
        audio.irq(None)
        self.mark("rx_end")

    async def tx_async(self):
        """asyncio.StreamWriter on the I2S object (frames are read from the host as usual)."""
        import asyncio

        link, fb, P = self.link, self.fb, self.payload
        out = asyncio.StreamWriter(self.audio, {})
        self.mark("tx_start")
        while True:
            t = link.read_frame(self.timeout)
            link.grant()
            if t == _DATA:
                n = link.plen
                out.write(link.pfull if n == P else memoryview(link.pbuf)[:n])
                await out.drain()
                self.frames += n // fb
            elif t in (_END, _ABORT, _TIMEOUT):
                self.reason = "end" if t == _END else "abort" if t == _ABORT else "timeout"
                break
        self._play_out()
        self.mark("tx_end")

    async def rx_async(self):
        """asyncio.StreamReader on the I2S object."""
        import asyncio

        link, fb, P = self.link, self.fb, self.payload
        want = self.cfg.get("frames", 0)
        inp = asyncio.StreamReader(self.audio)
        buf, view = link.frame_buffer(P)
        self.mark("rx_start")
        self.last = time.ticks_ms()
        while True:
            n = P if not want else min(P, (want - self.frames) * fb)
            part = view if n == P else memoryview(view)[:n]
            got = 0
            while got < n:
                self.meter.before(self.frames + got // fb)
                got += await inp.readinto(part if not got else memoryview(part)[got:])
            self.meter.after(self.frames + n // fb)
            link.send_data(buf, part, n)
            self.frames += n // fb
            if want and self.frames >= want:
                self.reason = "frames"
                break
            if not self.host_poll():
                break
        self.mark("rx_end")

    def _play_out(self):
        if self.reason == "end":
            # a ring of silence pushes the last audio onto the wire before deinit
            self.mark("drain")
            silence = bytearray(min(self.cfg["ibuf"], 4096))
            left = self.cfg["ibuf"] + len(silence)
            while left > 0:
                self.audio.write(silence)
                left -= len(silence)

    # -- probe: measure the link ------------------------------------------------------------------
    def probe(self):
        link = self.link
        up = self.cfg.get("probe_up", 0)
        got = 0
        t0 = None
        while got < up:
            t = link.read_frame(self.timeout)
            link.grant()
            if t == _TIMEOUT:
                self.reason = "timeout"
                return {}
            if t == _PROBE:
                if t0 is None:
                    t0 = time.ticks_us()
                got += link.plen
        up_us = time.ticks_diff(time.ticks_us(), t0) if t0 is not None else 0
        down = self.cfg.get("probe_down", 0)
        chunk = self.payload
        buf, view = link.frame_buffer(chunk)
        sent = 0
        while sent < down:
            n = min(chunk, down - sent)
            link._head(buf, _PROBE, n)
            if link.crc:
                link._trailer(buf, _HDR + n, crc32(view if n == chunk else memoryview(view)[:n]))
                link.out.write(buf, 0, _HDR + n + 4)
            else:
                link.out.write(buf, 0, _HDR + n)
            sent += n
        return {"up_bytes": got, "up_us": up_us, "down_bytes": sent}



class Loop:
    """Full duplex on two buses (START mode "loop", docs/protocol.md): TX on cfg["tx"]'s I2S,
    RX on cfg["rx"]'s, at once. Each host DATA frame is written to TX, then as many bytes are
    read from RX and sent back, until cfg["frames"] RX frames or END. The clock report (sync)
    says where the first written frame went out on TX and where RX started, in TX frames, so
    the host can take the board's own buffering out of a loopback's latency."""

    def __init__(self, stream):
        self.s = stream
        cfg = stream.cfg
        self.want = cfg.get("frames", 0)
        self.tx = None
        self.rx = None
        self.t_tx = 0
        self.t_rx = 0
        self.sync = {}
        self.rx_frames = 0
        self.rx_meter = RxMeter(cfg["rate"], rx_ring_frames(cfg["ibuf"]))
        self.buf, self.view = stream.link.frame_buffer(stream.payload)
        self.counted = 0
        self.warm = stream.warmup()
        self.prefill = cfg["ibuf"] // 2

    def open(self):
        """Both buses once, so that a board without them says so before READY; RX then waits
        closed until the first TX write, so its ring cannot overflow while the host starts."""
        cfg = self.s.cfg
        self.t_tx = time.ticks_us()
        self.tx = _open_i2s(cfg, "tx", _pins(cfg["tx"]))
        self.s.audio = self.tx  # closed by main's way out, as the one-bus modes' audio
        self.s.mark("tx_init")
        self.rx_pins = _pins(cfg["rx"])
        self.rx = _open_i2s(cfg, "rx", self.rx_pins)
        self.rx.deinit()
        self.rx = None
        st = getattr(self.tx, "_sim_stats", None)
        if st is not None:  # the port says when its clock started: exact (the virtual board)
            self.t_tx = st()["t0"]
        self.sync["clock"] = "ticks" if st is None else "port"

    def open_rx(self):
        """RX from now on: frame 0 of the recording is the first one clocked after this."""
        self.t_rx = time.ticks_us()
        self.rx = _open_i2s(self.s.cfg, "rx", self.rx_pins)
        self.s.mark("rx_init")
        st = getattr(self.rx, "_sim_stats", None)
        if st is not None:
            self.t_rx = st()["t0"]
        self.sync["rx_init_us"] = time.ticks_diff(self.t_rx, self.t_tx)

    def close(self):
        self.port_xruns()
        for a in (self.rx, self.tx):
            if a is not None:
                a.deinit()
        self.rx = self.tx = None
        self.s.audio = None
        self.s.mark("deinit")

    def port_xruns(self):
        """Where the port counts them itself (the virtual board): frames the buses lost."""
        for a, k, key in ((self.tx, "underrun_frames", "tx_underrun_frames"),
                          (self.rx, "overrun_frames", "rx_overrun_frames")):
            st = getattr(a, "_sim_stats", None)
            if st is not None:
                self.sync[key] = st()[k]

    def run(self):
        s = self.s
        s.mark("loop_start")
        s.last = time.ticks_ms()
        while self.step():
            pass
        s.heap.stop()
        s.heap_frames = s.heap_last - s.heap_first if s.heap.bytes or s.heap_last else 0
        s.mark("loop_end")

    # per-frame methods: few locals each (MicroPython heap-allocates big call frames)
    def step(self):
        """One host frame in (DATA to TX); after DATA, the same number of bytes out of RX."""
        link = self.s.link
        t = link.read_frame(self.s.timeout)
        link.grant()
        if t == _DATA:
            n = self.put(link.plen)
            if self.rx is not None:
                return self.get(n)
            if self.s.frames * self.s.fb >= self.prefill:
                self.open_rx()  # TX holds half a ring: it cannot run dry while RX is read
            return True
        if t == _END or t == _ABORT or t == _TIMEOUT:
            self.s.reason = "end" if t == _END else "abort" if t == _ABORT else "timeout"
            return False
        return True  # KEEPALIVE and the like

    def put(self, n):
        s = self.s
        s.meter.tx(s.frames)
        self.tx.write(s.link.pfull if n == s.payload else memoryview(s.link.pbuf)[:n])
        if s.frames == 0:
            self.first_tx(n)
        s.frames += n // s.fb
        return n

    def first_tx(self, n):
        """Where the first written frame goes out, in TX frames since TX's init."""
        s = self.s
        now = time.ticks_us()
        s.mark("first_audio")
        self.sync["tx_write_us"] = time.ticks_diff(now, self.t_tx)
        st = getattr(self.tx, "_sim_stats", None)
        if st is not None:  # clocked + still in the ring - just written = where it started
            d = st()
            self.sync["tx_first_frame"] = d["frames"] + d["ring_bytes"] // s.fb - n // s.fb

    def get(self, n):
        s = self.s
        if self.want and self.rx_frames + n // s.fb > self.want:
            n = (self.want - self.rx_frames) * s.fb
            s.heap.stop()
        part = self.view if n == s.payload else memoryview(self.view)[:n]
        self.rx_meter.before(self.rx_frames)
        self.rx.readinto(part)
        if self.rx_frames == 0:
            self.sync["rx_read_us"] = time.ticks_diff(time.ticks_us(), self.t_tx)
        s.link.send_data(self.buf, part, n)
        self.rx_frames += n // s.fb
        self.rx_meter.after(self.rx_frames)
        return self.counting()

    def counting(self):
        s = self.s
        s.heap.mark()
        s.heap_last = self.rx_frames
        self.counted += 1
        if self.counted == self.warm:
            s.heap.start()
            s.heap_first = self.rx_frames
        if self.want and self.rx_frames >= self.want:
            s.reason = "frames"
            return False
        return True

    def summary(self):
        s = self.s
        return {"rx_frames": self.rx_frames, "tx_frames": s.frames, "sync": self.sync,
                "underruns": s.meter.events, "overruns": self.rx_meter.events,
                "lost_frames": s.meter.lost + self.rx_meter.lost, "overrun_at": self.rx_meter.where()}


def dx_prefill(cfg, payload):
    """Bytes of TX audio the board parks during RX: whole payload-sized slots."""
    return max(1, cfg.get("prefill", cfg["ibuf"]) // payload) * payload


class Duplex:
    """Half-duplex on one SD line (docs/half-duplex.md): record, switch, play (or the other
    way round) in one START..SUMMARY, the switch done here with no host round trip.

    The switch is release, wait, drive. To TX: stop RX, deinit, park the SD pads as inputs,
    DIR to the codec-listens level, wait the switch delay, start TX, lead-in silence, audio.
    To RX: play out silence, deinit TX, park the SD pads, wait, DIR to the codec-drives level,
    start RX, throw away the first frames. Each step is timestamped (ticks_us)."""

    def __init__(self, stream):
        from machine import Pin

        self.s = stream
        cfg = stream.cfg
        self.cfg = cfg
        self.Pin = Pin
        self.rx_level = cfg.get("dir_rx_level", 0)
        self.dir = Pin(cfg["dir"], Pin.OUT, value=1 - self.rx_level) if cfg.get("dir") is not None else None
        self.pads = [cfg["rx"]["sd"]]
        if cfg["tx"]["sd"] != cfg["rx"]["sd"]:
            self.pads.append(cfg["tx"]["sd"])  # two pads tied together: the idle one is an input
        self.delay = cfg.get("switch_delay_us", 1000)
        self.tx_pins = _pins(cfg["tx"])
        self.rx_pins = _pins(cfg["rx"])
        self.switching = False
        P = stream.payload
        self.slots = []
        n = dx_prefill(cfg, P) // P
        while len(self.slots) < n:
            b = bytearray(P + 4)
            self.slots.append((b, memoryview(b)[:P]))
        self.filled = []  # lengths of the slots holding pre-sent TX audio, in order
        self.rx_frames = 0
        self.gaps = []
        # the bus against the clock, as plain tx/rx streams do: an overrun is a gap in the recording
        self.rx_meter = RxMeter(cfg["rate"], rx_ring_frames(cfg["ibuf"]))
        self.tx_meter = Meter(cfg["rate"], cfg["ibuf"] // stream.fb)

    def _park(self):
        for p in self.pads:
            self.Pin(p, self.Pin.IN)

    def _wait(self):
        if self.delay:
            time.sleep_us(self.delay)

    def to_rx(self, first):
        if self.switching:
            raise RuntimeError("switch re-entered")
        self.switching = True
        s = self.s
        if not first:
            s._play_out()
            s.audio.deinit()
            s.audio = None
            s.mark("tx_deinit")
        self._park()
        s.mark("sd_released")
        self._wait()
        s.mark("delay_done")
        if self.dir is not None:
            self.dir.value(self.rx_level)
            s.mark("dir_rx")
        s.audio = _open_i2s(self.cfg, "rx", self.rx_pins)
        s.mark("rx_init")
        self._gap()
        view = self.slots[0][1]
        discard = self.cfg.get("discard_frames", 0) * s.fb
        while discard > 0:  # word-clock alignment and whatever the line held: exactly
            n = min(discard, len(view))
            s.audio.readinto(view if n == len(view) else memoryview(view)[:n])
            discard -= n
        s.mark("rx_kept")
        self.switching = False
        s.link.send_json(_PHASE, {"phase": "rx"})

    def to_tx(self, first):
        if self.switching:
            raise RuntimeError("switch re-entered")
        self.switching = True
        s = self.s
        if not first:
            s.audio.deinit()
            s.audio = None
            s.mark("rx_deinit")
        self._park()
        s.mark("sd_released")
        if self.dir is not None:
            self.dir.value(1 - self.rx_level)
            s.mark("dir_tx")
        self._wait()
        s.mark("delay_done")
        s.audio = _open_i2s(self.cfg, "tx", self.tx_pins)
        s.mark("tx_init")
        self._gap()
        lead = self.cfg.get("lead_in_frames", 0) * s.fb
        silence = bytearray(min(max(lead, 4), 1024))
        while lead > 0:
            n = min(lead, len(silence))
            s.audio.write(silence if n == len(silence) else memoryview(silence)[:n])
            lead -= n
        s.mark("lead_in_done")
        self.switching = False
        s.link.send_json(_PHASE, {"phase": "tx"})

    def _gap(self):
        t = self.s.timeline
        if len(t) >= 2:
            stop = [m[1] for m in t if m[0] in ("rx_deinit", "tx_deinit")]
            if stop:
                self.gaps.append(time.ticks_diff(t[-1][1], stop[-1]))

    def record(self, host_stops):
        """RX until rx_frames (or the host's SWITCH); meanwhile park pre-sent TX audio."""
        s, link = self.s, self.s.link
        P, fb = s.payload, s.fb
        want = self.cfg.get("rx_frames", 0)
        buf, view = link.frame_buffer(P)
        last = time.ticks_ms()
        while True:
            n = P if not want else min(P, (want - self.rx_frames) * fb)
            if n <= 0:
                break
            part = view if n == P else memoryview(view)[:n]
            self.rx_meter.before(self.rx_frames)
            s.audio.readinto(part)
            self.rx_meter.after(self.rx_frames + n // fb)
            link.send_data(buf, part, n)
            self.rx_frames += n // fb
            if link.wait(0):
                t = self._take(0)
                if t == _SWITCH or t == _END or t == _ABORT:
                    if t == _ABORT:
                        s.reason = "abort"
                    break
                last = time.ticks_ms()
            elif time.ticks_diff(time.ticks_ms(), last) > s.timeout:
                s.reason = "timeout"
                break
        s.mark("rx_stop")

    def _take(self, ms):
        """Read one host frame; DATA goes into the next free slot (the host never pre-sends
        more than READY's prefill, so a slot is always there)."""
        link = self.s.link
        if len(self.filled) >= len(self.slots):
            t = link.read_frame(ms)
            link.grant()
            if t == _DATA:
                raise RuntimeError("host sent more audio than the prefill holds")
            return t
        b, v = self.slots[len(self.filled)]
        keep_b, keep_v = link.pbuf, link.pfull
        link.pbuf, link.pfull = b, v
        t = link.read_frame(ms)
        link.pbuf, link.pfull = keep_b, keep_v
        link.grant()
        if t == _DATA:
            self.filled.append(link.plen)
        return t

    def play(self):
        """The parked audio first, then the host's frames until END (or SWITCH)."""
        s, link, fb = self.s, self.s.link, self.s.fb
        first = True
        for i in range(len(self.filled)):
            n = self.filled[i]
            b, v = self.slots[i]
            self.tx_meter.tx(s.frames)
            s.audio.write(v if n == len(v) else memoryview(b)[:n])
            if first:
                s.mark("first_audio")
                first = False
            s.frames += n // fb
        self.filled = []
        while True:
            t = link.read_frame(s.timeout)
            link.grant()
            if t == _DATA:
                n = link.plen
                self.tx_meter.tx(s.frames)
                s.audio.write(link.pfull if n == s.payload else memoryview(link.pbuf)[:n])
                if first:
                    s.mark("first_audio")
                    first = False
                s.frames += n // fb
            elif t in (_END, _SWITCH, _ABORT, _TIMEOUT):
                s.reason = {_END: "end", _SWITCH: "end", _ABORT: "abort", _TIMEOUT: "timeout"}[t]
                return t

    def run(self):
        s = self.s
        if self.cfg.get("order", "record-play") == "record-play":
            self.to_rx(True)
            self.record(False)
            if s.reason in ("abort", "timeout"):
                return
            self.to_tx(False)
            self.play()
            s._play_out()
        else:
            self.to_tx(True)
            self.play()
            if s.reason in ("abort", "timeout"):
                return
            s.reason = "end"
            self.to_rx(False)
            self.record(False)
        s.audio.deinit()
        s.audio = None
        s.mark("deinit")

    def summary(self):
        return {"rx_frames": self.rx_frames, "tx_frames": self.s.frames, "clock_gaps_us": self.gaps,
                "switch_delay_us": self.delay, "overruns": self.rx_meter.events,
                "underruns": self.tx_meter.events, "lost_frames": self.rx_meter.lost + self.tx_meter.lost,
                "overrun_at": self.rx_meter.where()}


def _baud(link):
    """BAUD from the host: a query (baud 0) or a proposal. A proposal is answered at the old
    rate, then the UART switches and the host must confirm at the new rate within 0.5 s, or
    the old rate comes back (docs/protocol.md)."""
    req = json.loads(bytes(memoryview(link.pbuf)[:link.plen]))
    want = req.get("baud", 0)
    if not want:
        link.send_json(_BAUD, {"baud": link.baud})
        return
    why = None
    if sys.platform != "esp32":
        why = "the REPL of this port is not a UART"
    else:
        try:
            from machine import UART  # noqa: F401
        except ImportError:
            why = "no machine.UART"
    if why:
        link.send_json(_BAUD, {"ok": False, "baud": link.baud, "why": why})
        return
    old = link.baud or req.get("restore", 115200)
    if not link.baud0:
        link.baud0 = req.get("restore", 115200)
    link.send_json(_BAUD, {"ok": True, "baud": want})
    try:
        link.set_baud(want)
    except Exception:
        link.baud = old
        return  # still at the old rate: the host's confirmation arrives garbled, it falls back
    t = link.read_frame(500)
    if t == _BAUD and link.plen and json.loads(bytes(memoryview(link.pbuf)[:link.plen])).get("baud") == want:
        link.send_json(_BAUD, {"ok": True, "baud": want, "confirmed": True})
    else:
        link.set_baud(old)


def main(source="uploaded"):
    link = Link()
    stream = None
    lp = None
    where = "start"
    try:
        _hello(link, source)
        link.set_payload(1024)  # room for START
        link.window = link.inbuf
        link.cbuf = bytearray(_HDR + 4 + 4)
        link.cview = memoryview(link.cbuf)[_HDR:_HDR + 4]
        t = link.read_frame(10000)
        while t == _BAUD:
            _baud(link)
            link.fresh()  # the stream's frames are counted from START on
            t = link.read_frame(10000)
        if t == _ABORT or t == _TIMEOUT:
            return  # the host changed its mind (or went away) before starting a stream
        if t != _START:
            raise RuntimeError("expected START from host, got %d" % t)
        cfg = json.loads(bytes(memoryview(link.pbuf)[:link.plen]))
        link.crc = link.crc and cfg.get("crc", True)
        link.window = min(cfg.get("window", link.inbuf), link.inbuf)
        payload = cfg.get("payload", 256)
        # a coded DATA payload is at most the audio plus its mode byte
        link.set_payload(max(payload, 64) + (1 if cfg.get("code") else 0),
                         spare=cfg.get("io", "blocking") != "blocking")
        stream = Stream(link, cfg)
        mode = cfg["mode"]
        extra = None
        if mode in ("tx", "rx"):
            where = "i2s"
            stream.audio = _open_i2s(cfg, mode)
            stream.mark("i2s_init")
        elif mode == "loop":
            where = "i2s"
            lp = Loop(stream)
            lp.open()
        where = "stream"
        link.send_json(_READY, {"window": link.window, "payload": payload, "frame_bytes": stream.fb,
                                "prefill": dx_prefill(cfg, payload) if mode == "duplex" else 0,
                                "code": 1 if stream.coder is not None else 0})
        link.consumed = 0
        io = cfg.get("io", "blocking")
        if mode == "duplex":
            where = "i2s"
            dx = Duplex(stream)
            where = "stream"
            dx.run()
            extra = dx.summary()
        elif mode == "loop":
            lp.run()
            lp.close()
            extra = lp.summary()
        elif mode in ("tx", "rx") and io != "blocking":
            if io == "irq":
                stream.tx_irq() if mode == "tx" else stream.rx_irq()
            elif io == "asyncio":
                import asyncio

                asyncio.run(stream.tx_async() if mode == "tx" else stream.rx_async())
            else:
                raise ValueError("unknown io style %r" % io)
        elif mode == "tx":
            stream.tx()
        elif mode == "rx":
            stream.rx()
        elif mode == "probe":
            extra = stream.probe()
        else:
            raise ValueError("unknown mode %r" % mode)
        if stream.audio is not None:
            stream.port_xruns()
            stream.audio.deinit()
            stream.audio = None
            stream.mark("deinit")
        link.send_json(_SUMMARY, stream.summary(extra))
    except Exception as e:
        if stream is not None and stream.heap.on:
            stream.heap.stop()
        link.send_json(_ERROR, {"error": "%s: %s" % (type(e).__name__, e), "where": where})
    finally:
        if lp is not None and lp.rx is not None:
            lp.rx.deinit()
        if stream is not None and stream.audio is not None:
            stream.audio.deinit()
        # after a clean end the host sends nothing more: a short quiet is enough
        link.drain(10 if stream is not None and stream.reason in ("end", "frames") else 50)
        link.close()
        gc.enable()
