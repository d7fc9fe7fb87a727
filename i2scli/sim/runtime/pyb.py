# The virtual board's `pyb` module (MicroPython code), for stm32-based profiles
# (profile["vcp"] true). _board.py puts it in sys.modules["pyb"].
#
# pyb.USB_VCP reads the link input (fd 0) and writes the link output (fd 1).
# Like the real VCP its reads never wait: they return what is in the input
# buffer now (None when it is empty). To get that on a pipe, importing this
# module opens a second, non-blocking description of fd 0 through /dev/fd/0 —
# so import it BEFORE the board filesystem is mounted at '/' (which hides /dev).
# Without that it falls back to polling byte by byte (correct, slower).
#
# The first read through USB_VCP (and the first after init(flow=...) changes
# the flow setting) sends the event {"ev": "vcp", "flow": "rts" | None}: the
# model then applies the VCP input rate and, with flow=RTS, back-pressure.
import sys
import select
import micropython as _mp
import _simtime as _t  # utime with the board's clock (_simport.py)
import _chan

try:
    import machine as _machine

    Pin = _machine.Pin
except Exception:  # pragma: no cover
    _machine = None

_in = None  # non-blocking FileIO on a second description of fd 0
_poll = None
_stdin = sys.stdin.buffer
_stdout = sys.stdout.buffer


def _open_input(fd=0):
    """Open a non-blocking reader of fd `fd` (needs /dev and the socket module:
    MicroPython has no fcntl, so O_NONBLOCK is set through socket.setblocking on
    a borrowed descriptor)."""
    global _in, _poll
    try:
        f = open("/dev/fd/%d" % fd, "rb")
    except OSError:
        return None
    try:
        import socket
        import uctypes

        s = socket.socket()
        try:
            st = uctypes.struct(id(s), {"fd": 8 | uctypes.INT32}, uctypes.NATIVE)
            own = st.fd
            if own != s.fileno():
                raise OSError(22)
            st.fd = f.fileno()
            try:
                s.setblocking(False)
            finally:
                st.fd = own
        finally:
            s.close()
    except Exception:
        f.close()
        return None
    _in = f
    _poll = select.poll()
    _poll.register(f, select.POLLIN)
    return f


_open_input(0)
if _poll is None:
    _poll = select.poll()
    _poll.register(_stdin, select.POLLIN)


def _any():
    for _ in _poll.ipoll(0):
        return True
    return False


class USB_VCP:
    RTS = 1
    CTS = 2
    IRQ_RX = 1

    _obj = None

    def __new__(cls, id=0):
        if USB_VCP._obj is None:
            o = object.__new__(cls)
            o._flow = 0
            o._sent = -1  # flow value last announced to the model
            USB_VCP._obj = o
        return USB_VCP._obj

    def __init__(self, id=0):
        pass

    def __repr__(self):
        return "USB_VCP()"

    def init(self, *, flow=-1):
        if flow != -1:
            self._flow = flow
        return None

    def setinterrupt(self, chr):
        # same effect as micropython.kbd_intr(chr); the board's micropython
        # wrapper (_simmp) reports to the model itself
        _mp.kbd_intr(chr)
        if getattr(_mp, "_real_kbd_intr", None) is None:
            _chan.intr(chr)

    def isconnected(self):
        return True

    def _reading(self):
        if self._sent != self._flow:
            self._sent = self._flow
            _chan.event("vcp", flow="rts" if self._flow & 1 else None)

    def any(self):
        if self._sent != self._flow:
            self._reading()
        return _any()

    def readinto(self, buf, maxlen=-1):
        if self._sent != self._flow:
            self._reading()
        n = len(buf)
        if 0 <= maxlen < n:
            n = maxlen
        if n == 0:
            return 0
        if _in is not None:
            r = _in.readinto(buf, n)
            return r if r else None
        # fallback: byte by byte while input is there
        got = 0
        one = bytearray(1)
        while got < n and _any():
            if _stdin.readinto(one, 1) != 1:
                break
            buf[got] = one[0]
            got += 1
        return got if got else None

    def read(self, nbytes=-1):
        if nbytes == 0:
            return b""
        if nbytes > 0:
            b = bytearray(nbytes)
            r = self.readinto(b)
            if r is None:
                return None
            return bytes(b) if r == nbytes else bytes(memoryview(b)[:r])
        out = b""
        b = bytearray(256)
        while True:
            r = self.readinto(b)
            if not r:
                break
            out += memoryview(b)[:r]
        return out if out else None

    def readline(self):
        out = bytearray()
        one = bytearray(1)
        while True:
            r = self.readinto(one)
            if not r:
                break
            out.append(one[0])
            if one[0] == 10:
                break
        return bytes(out) if out else None

    def readlines(self):
        lines = []
        while True:
            ln = self.readline()
            if ln is None:
                return lines
            lines.append(ln)

    def write(self, buf):
        return _stdout.write(buf)

    def send(self, data, *, timeout=5000):
        if isinstance(data, int):
            data = bytes((data & 0xFF,))
        return _stdout.write(data)

    def recv(self, data, *, timeout=5000):
        """Fill data (or a new buffer of that many bytes) within timeout ms; returns the
        count (or the bytes). Allocation-free for a buffer: the agent's hot path."""
        if isinstance(data, int):
            buf = bytearray(data)
            n = self._recv_into(buf, timeout)
            return bytes(buf) if n == data else bytes(memoryview(buf)[:n])
        return self._recv_into(data, timeout)

    def _recv_into(self, buf, timeout):
        if self._sent != self._flow:
            self._reading()
        if not self._wait(timeout):
            return 0
        # Data has started to arrive: a blocking exact read on fd 0 takes the rest.
        return _stdin.readinto(buf, len(buf))

    def _wait(self, timeout):
        t0 = _t.ticks_ms()
        while True:
            for _ in _poll.ipoll(1):
                return True
            if _t.ticks_diff(_t.ticks_ms(), t0) >= timeout:
                return False

    def irq(self, handler=None, trigger=1, hard=False):
        return None


class LED:
    """LEDs exist on the real boards; here they only remember their state."""

    def __init__(self, id):
        if not 1 <= id <= 4:
            raise ValueError("LED(%d) doesn't exist" % id)
        self._id = id
        self._v = 0

    def on(self):
        self._v = 255

    def off(self):
        self._v = 0

    def toggle(self):
        self._v = 0 if self._v else 255

    def intensity(self, v=None):
        if v is None:
            return self._v
        self._v = v

    def __repr__(self):
        return "LED(%d)" % self._id


def _sleep_us(us):
    h = getattr(_machine, "_sleep_until", None) if _machine is not None else None
    if h is None:
        _t.sleep_us(us)
    elif us > 0:
        h(_t.ticks_add(_t.ticks_us(), us))


def delay(ms):
    _sleep_us(ms * 1000)


def udelay(us):
    _sleep_us(us)


def millis():
    return _t.ticks_ms()


def micros():
    return _t.ticks_us()


def elapsed_millis(start):
    return _t.ticks_diff(_t.ticks_ms(), start)


def elapsed_micros(start):
    return _t.ticks_diff(_t.ticks_us(), start)


def freq():
    f = _machine.freq() if _machine is not None else 168000000
    return (f, f, f // 4, f // 2)


def have_cdc():
    return True
