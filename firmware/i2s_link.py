# i2s agent, framing and flow control (docs/protocol.md): frames over the REPL stream, CRCs,
# resync, sequence numbers, credits. Sender writes frames, Link (a Sender) reads them. No
# allocation per frame: preallocated buffers, fixed memoryviews, readinto, integer maths.
import io
import sys
import time
import micropython
from micropython import const

try:
    import ujson as json
except ImportError:
    import json

# frame types (_DATA, _ABORT, ...), _HDR, _TIMEOUT: the host puts their consts here as it sends it
_TICK_MS = const(100)  # the watch's period (Watch)
_GRACE_MS = const(500)  # a frame in flight at its deadline finishes within this (Watch)
_RESIDUE = const(0x2144DF1C)  # CRC-32 of any payload followed by its own CRC (little-endian)

try:
    from binascii import crc32
except ImportError:
    crc32 = None
try:
    from struct import pack_into
except ImportError:
    pack_into = None

# The CRC trailer of a frame built in place (payload at _HDR, its n bytes, then 4 for the CRC),
# in viper where the firmware has it: binascii.crc32's result is a heap int on a 32-bit port
# whenever it is 2**30 or more (3 frames in 4), and the board sends a frame (a credit, DATA)
# many times a second. A 256-word table, then 0xFFFFFFFF and the polynomial: little-endian
# bytes, so no big int is needed to make it.
_CRCT = bytearray(1024) + b"\xff\xff\xff\xff\x20\x83\xb8\xed"
_SEAL = """
@micropython.viper
def _seal(buf: ptr8, n: int, t: ptr32):
    c = uint(t[256])
    s = ptr8(int(buf) + HDR)
    i = 0
    while i < n:
        c = uint(t[(int(c) ^ s[i]) & 0xFF]) ^ (c >> 8)
        i += 1
    c = c ^ uint(t[256])
    s[n] = c
    s[n + 1] = c >> 8
    s[n + 2] = c >> 16
    s[n + 3] = c >> 24
@micropython.viper
def _table(t: ptr32):
    p = uint(t[257])
    i = 0
    while i < 256:
        c = uint(i)
        k = 0
        while k < 8:
            c = (c >> 1) ^ p if c & 1 else c >> 1
            k += 1
        t[i] = c
        i += 1
"""
try:
    if not getattr(sys.implementation, "_mpy", 0) >> 10:  # no native emitter: MPY_FEATURE_ARCH 0
        raise ImportError
    exec(_SEAL.replace("HDR", str(_HDR)))  # (a build that has none says SyntaxError here)
    _table(_CRCT)
except Exception:
    _seal = None
del _SEAL


class Sender:
    """Frames to the host: headers and CRCs built in place, credits granted; the UART rate
    put back on the way out."""

    def __init__(self):
        self.out = sys.stdout.buffer
        self.crc = crc32 is not None
        self.obuf = bytearray(_HDR + 4)
        self.tx_seq = 0
        self.baud = 0  # the REPL UART's rate when we changed it (0: as we found it)
        self.baud0 = 0  # the rate to put back on every way out
        self.vcp = None  # pyb.USB_VCP where the port has one (Link)

    def set_baud(self, rate):
        """Re-time the REPL UART (esp32: machine.UART(0) is the REPL's, since v1.19). Its
        init sets the divider at once, so the TX FIFO (128 bytes) is let out first."""
        if not rate or rate == (self.baud or self.baud0):
            return
        time.sleep_ms(1280000 // (self.baud or self.baud0 or 115200) + 4)
        from machine import UART

        UART(0, baudrate=rate)
        self.baud = rate

    def close(self):
        watch = getattr(self, "watch", None)
        if watch is not None:
            watch.stop()
        try:
            self.set_baud(self.baud0)  # the REPL, mpremote and the next i2s expect the usual rate
        except Exception:
            pass
        micropython.kbd_intr(3)
        if watch is not None:
            watch.release()
        if self.vcp is not None:
            try:
                self.vcp.setinterrupt(3)
            except Exception:
                pass

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
        if pack_into is not None:
            # no temporaries: on a 32-bit port a CRC of 2**30 or more is a big int, and each
            # of the byte operations below made another (128 bytes a frame on rp2)
            pack_into("<I", buf, off, c)
            return
        buf[off] = c & 0xFF
        buf[off + 1] = (c >> 8) & 0xFF
        buf[off + 2] = (c >> 16) & 0xFF
        buf[off + 3] = (c >> 24) & 0xFF

    def seal(self, buf, n, view):
        """The CRC trailer of the frame built in buf (its payload's n bytes at _HDR, which `view`
        shows), in place. (Kept small: a call whose frame is more than 11 words has it on the
        heap, py/objfun.c VM_MAX_STATE_ON_STACK.)"""
        if _seal is None:
            self._trailer(buf, _HDR + n, crc32(view))
        else:
            _seal(buf, n, _CRCT)

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
            self.seal(buf, n, view)
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
            self.seal(cb, 4, self.cview)
            self.out.write(cb, 0, 15)
        else:
            self.out.write(cb, 0, 11)

    def drain(self, quiet_ms=50):
        """Discard input until the host has been quiet a while, so nothing it sent after our
        last frame lands in the REPL as code."""
        while self.wait(quiet_ms):
            if not self._read(self.one, 1):
                return  # end of input (only a virtual board's pipe ends)

    def fresh(self):
        """Counters start again: a failed rate change leaves garbage that is not the stream's."""
        self.rx_seq = -1
        self.crc_errors = 0
        self.resyncs = 0
        self.seq_gaps = 0
        self.skipped = 0

    def set_payload(self, size, spare=False, long=False):
        """Preallocate the receive buffer: payload + CRC trailer (and a second one for double
        buffering, swap()ped without allocating). `long`: frames may pass half the window."""
        self.max_payload = size
        self.pbuf = bytearray(size + 4)
        self.pfull = memoryview(self.pbuf)[:size]
        if spare:
            self.pbuf2 = bytearray(size + 4)
            self.pfull2 = memoryview(self.pbuf2)[:size]
        if self.vcp is not None:
            self.short = ShortReads(self.vcp, self.pbuf, self.pbuf2 if spare else None)
        self.long = None
        if long and self.vcp is None and _HDR + size + 4 > self.window >> 1:
            self.long = Pieces(self.window >> 2)

    def swap(self):
        self.pbuf, self.pbuf2 = self.pbuf2, self.pbuf
        self.pfull, self.pfull2 = self.pfull2, self.pfull


class ShortReads:
    """The VCP's recv() fills a whole buffer: a payload shorter than its buffer (a coded frame)
    is read through preallocated 64-byte views of it and a tail view, so no slice is made per
    frame (only where a VCP is read: pyboard-family ports)."""

    def __init__(self, vcp, buf, buf2):
        self.vcp = vcp
        tb = bytearray(64)
        self.tails = [memoryview(tb)[:r] for r in range(64)]
        self.gbuf = buf
        self.grid = self._grid(buf)
        self.gbuf2 = buf2
        self.grid2 = None if buf2 is None else self._grid(buf2)

    def _grid(self, buf):
        return [memoryview(buf)[i:i + 64] for i in range(0, len(buf) - 63, 64)]

    def read(self, buf, n):
        """n bytes into buf, shorter than it."""
        g = self.grid if buf is self.gbuf else (self.grid2 if buf is self.gbuf2 else None)
        if g is None:  # a buffer of no grid's (not a stream's payload buffer): a slice
            return self.vcp.recv(memoryview(buf)[:n], timeout=2000)
        g = self._chunks(g, n >> 6)
        return self._tail(buf, g, n & 63)

    def _chunks(self, g, q):
        i = 0
        while i < q:
            self.vcp.recv(g[i], timeout=2000)
            i += 1
        return q << 6

    def _tail(self, buf, off, r):
        if r:
            t = self.tails[r]
            self.vcp.recv(t, timeout=2000)
            i = 0
            while i < r:
                buf[off + i] = t[i]
                i += 1
        return off + r


class Pieces:
    """Frames longer than half the credit window: the host sends one as credit allows, so it
    is read a quarter window at a time with a grant before each piece (docs/protocol.md,
    credits). The first piece goes straight into the receive buffer, the others through one
    scratch buffer and a slice assignment (which allocates nothing), so no buffer needs views."""

    def __init__(self, piece):
        self.piece = piece
        self.scratch = bytearray(piece)

    def read(self, link, n):
        """n bytes into link.pbuf (whichever buffer it is: a duplex slot too)."""
        buf = link.pbuf
        r = n % self.piece or self.piece
        link.inp.readinto(buf, r)
        link.consumed += r
        while r < n:
            link.grant()
            link.inp.readinto(self.scratch, self.piece)
            link.consumed += self.piece
            buf[r:r + self.piece] = self.scratch
            r += self.piece
        return True


class _Kick(getattr(io, "IOBase", object)):  # a port without IOBase has no Watch to use it
    """A console of our own (os.dupterm) that types one Ctrl-C: the port's stdin loop reads it
    when its ring is empty and raises KeyboardInterrupt in the read that waits (esp32, rp2:
    mp_hal_stdin_rx_chr, extmod/os_dupterm.c). Everything printed meanwhile goes nowhere."""

    def __init__(self):
        self.n = 1

    def readinto(self, buf):
        if not self.n:
            return None  # nothing more (EAGAIN)
        self.n = 0
        buf[0] = 3
        return 1

    def write(self, buf):
        return len(buf)

    def ioctl(self, req, arg):
        return arg & 1 if req == 3 and self.n else 0  # MP_STREAM_POLL: readable while it has it


class Watch:
    """The agent's deadline inside a frame. read_frame's own deadline covers the waits between
    frames (a poll), but once a frame has begun its bytes are read with blocking reads, which
    nothing but Ctrl-C ends: a host killed mid-frame would leave the agent waiting for the rest
    with Ctrl-C off and the REPL UART at the raised rate. A hardware timer (soft callback: the
    port runs it while the read waits) looks every 100 ms; when a read_frame has run past its
    deadline by the grace and for longer than the stream's timeout, the host is gone: the REPL
    UART goes back to its rate, Ctrl-C comes back on, and a Ctrl-C typed on a console of our
    own ends the read (KeyboardInterrupt, which main() lets through after cleaning up).
    esp32 (hardware Timer(0)) and rp2 (soft Timer(-1), an alarm): in v1.28 both run soft
    callbacks and read dupterm in their stdin loop; stm32 has the VCP's own timeout instead."""

    def __init__(self, link):
        self.link = link
        self.limit = 0  # ms a read_frame may take on top of its deadline (the stream's timeout)
        self.tim = None
        self.prev = None
        self.kicked = False
        self.cb = self._tick
        try:
            from machine import Timer

            self.tim = Timer(-1 if sys.platform == "rp2" else 0)
            self.tim.init(mode=Timer.PERIODIC, period=_TICK_MS, callback=self.cb)
        except Exception:
            self.tim = None

    def _tick(self, _):
        link = self.link
        if not link.inread:
            return
        late = time.ticks_diff(time.ticks_ms(), link.deadline)
        if late > _GRACE_MS and late + link.wait_ms > self.limit + _GRACE_MS:
            self.fire()

    def fire(self):
        self.stop()
        link = self.link
        link.expired = True
        try:
            link.set_baud(link.baud0)
        except Exception:
            pass
        micropython.kbd_intr(3)
        try:
            import os

            self.prev = os.dupterm(_Kick())
            self.kicked = True
        except Exception:
            pass

    def stop(self):
        if self.tim is not None:
            self.tim.deinit()
            self.tim = None

    def release(self):
        """The console as it was before our Ctrl-C."""
        if self.kicked:
            self.kicked = False
            try:
                import os

                os.dupterm(self.prev)
            except Exception:
                pass


class Link(Sender):
    """Frames over the REPL stream: the fastest input path the port has, no allocation."""

    def __init__(self):
        Sender.__init__(self)
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
        if self.vcp is None:
            import select

            self.poll = select.poll()
            self.poll.register(self.inp, select.POLLIN)
        self.inbuf = _INBUF.get(sys.platform, 256)  # credits never exceed the port's stdin ring
        self.hdr = bytearray(_HDR)
        self.hdr[0] = _S0
        self.hdr[1] = _S1
        self.rest = memoryview(self.hdr)[2:]  # header after the sync bytes
        self.one = bytearray(1)
        self.crc4 = bytearray(4)
        self.deadline = 0
        self.wait_ms = 0  # the read_frame under way began wait_ms before its deadline (Watch)
        self.inread = False  # a read_frame is under way (Watch)
        self.expired = False  # the Watch ended a read_frame the host never finished
        self.watch = Watch(self) if sys.platform in ("esp32", "rp2") and self.vcp is None else None
        self.skipped = 0
        self.rx_seq = -1
        self.crc_errors = 0
        self.resyncs = 0
        self.seq_gaps = 0
        self.consumed = 0  # bytes taken out of the input buffer since the last grant
        self.max_payload = 0
        self.pbuf = None
        self.plen = 0
        self.short = None  # the VCP's reads of payloads shorter than the buffer (ShortReads)
        self.window = self.inbuf
        self.long = None  # Pieces: frames longer than half the window (set_payload)

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
        if self.short is None:  # a buffer before set_payload (not a stream's): a slice
            return self.vcp.recv(memoryview(buf)[:n], timeout=2000)
        return self.short.read(buf, n)

    def _read_payload(self, n):
        if self.long is None or n <= self.long.piece:
            return self._read(self.pbuf, n)
        return self.long.read(self, n)

    # Per-frame methods stay small: MicroPython puts a call frame on the heap once its
    # locals and stack pass 11 words, so each does one thing with few locals.
    def read_frame(self, ms):
        """Next good frame's type (payload in self.pbuf[:self.plen]), or _TIMEOUT when no
        good frame starts within ms. Sync bytes are read one at a time with a deadline, so
        stray bytes (a terminal's Ctrl-C, REPL chatter) can never leave it blocked; the rest of
        a frame is read blocking, under the Watch."""
        self.deadline = time.ticks_add(time.ticks_ms(), ms)
        self.wait_ms = ms
        self.inread = True
        if not self._sync():
            self.inread = False
            return _TIMEOUT
        self._read(self.rest, _HDR - 2)
        while True:
            t = self._frame()
            if t >= 0:
                self.inread = False
                return t
            self.resyncs += 1
            if not self._slide():
                self.inread = False
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
            self._read_payload(n + 4)
            if self.crc and not self._crc_ok(n):
                self.crc_errors += 1
                return False
        elif n:
            self._read_payload(n)
        self.plen = n
        self._seq(self.hdr[3])
        return True

    def _crc_ok(self, n):
        # The CRC-32 of a payload followed by its own CRC (little-endian) is always _RESIDUE:
        # a small int on a 32-bit port, where a CRC itself is 2**30 or more three times in
        # four and comes back as a heap object (32 bytes a frame on rp2). A full payload's
        # buffer is exactly payload and trailer: no slice either.
        if n == 0:
            return self._u32(self.pbuf, 0) == 0  # crc32 of nothing, without a slice
        if n == self.max_payload:
            return crc32(self.pbuf) == _RESIDUE
        return crc32(memoryview(self.pbuf)[:n + 4]) == _RESIDUE

    def _u32(self, p, i):
        return p[i] | (p[i + 1] << 8) | (p[i + 2] << 16) | (p[i + 3] << 24)

    def _seq(self, seq):
        if self.rx_seq >= 0 and seq != (self.rx_seq + 1) & 0xFF:
            self.seq_gaps += 1
        self.rx_seq = seq
