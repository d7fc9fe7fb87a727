# Board side of the control channel between the MicroPython board and the
# CPython board model (see docs/sim-internals.md). MicroPython code.
#
# Records on fd 3 (board -> model): 1 type byte, 3 length bytes (LE), payload.
# Replies on fd 4 (model -> board): raw RX sample bytes, in request order.
# Everything on the streaming path (tx, zeros, rx, pin) is allocation-free.
import json
import struct
import _simport

_out = None
_inp = None
_hdr = bytearray(20)


def open_channel(out_fd=3, in_fd=4):
    global _out, _inp
    # Opened before the board filesystem is mounted at '/', which hides /dev.
    _out = open("/dev/fd/%d" % out_fd, "wb")
    _inp = open("/dev/fd/%d" % in_fd, "rb")


class _Null:
    # Stand-in channel for standalone runs (config "channel": false): records
    # are dropped and RX replies read as silence.
    def write(self, buf, off=0, n=-1):
        return len(buf) if n < 0 else n

    def readinto(self, buf, n=-1):
        n = len(buf) if n < 0 else n
        for i in range(n):
            buf[i] = 0
        return n


def open_null():
    """No model attached: every record becomes a no-op (same API)."""
    global _out, _inp
    _out = _Null()
    _inp = _Null()


def now_us():
    # the board's clock (_simport.py); ticks period on the unix port is 2**62 us: no wrap.
    return _simport.now()


def _u32(at, v):
    struct.pack_into("<I", _hdr, at, v)


def _head(kind, n):
    _hdr[0] = kind
    _hdr[1] = n & 0xFF
    _hdr[2] = (n >> 8) & 0xFF
    _hdr[3] = (n >> 16) & 0xFF


def event(_ev, **fields):
    """A JSON event (allocates: use outside steady-state loops).
    The event name is positional-only in practice (named _ev so that events may
    carry a field called `name`, e.g. the pin event)."""
    fields["ev"] = _ev
    if "t" not in fields:
        fields["t"] = now_us()
    data = json.dumps(fields).encode()
    _head(0x4A, len(data))  # 'J'
    _out.write(_hdr, 0, 4)
    _out.write(data)


def wait_reply():
    """Wait for the model's one-byte reply to the event just sent (the model
    has acted on it: e.g. the link's baud rate changed)."""
    _inp.readinto(_hdr, 1)


def tx(sid, buf, off, n):
    """n bytes from buf[off:off+n] were accepted into TX session sid's ring."""
    _head(0x54, n + 1)  # 'T'
    _hdr[4] = sid
    _out.write(_hdr, 0, 5)
    _out.write(buf, off, n)


def clock(sid, ring_frames, zero_frames):
    """TX session sid clocked ring_frames from its ring onto SD, then
    zero_frames of silence because the ring ran empty (underrun)."""
    _head(0x43, 9)  # 'C'
    struct.pack_into("<BII", _hdr, 4, sid, ring_frames, zero_frames)
    _out.write(_hdr, 0, 13)


def dma_put(sid, pos, buf, off, n):
    """n bytes from buf[off:off+n] were written into TX session sid's DMA memory at byte pos
    (esp32: its buffers, not a ring; _simesp32.py)."""
    _head(0x57, n + 5)  # 'W'
    _hdr[4] = sid
    _u32(5, pos)
    _out.write(_hdr, 0, 9)
    _out.write(buf, off, n)


def dma_play(sid, pos, frames):
    """TX session sid clocked `frames` frames of its DMA memory from byte pos onto SD (esp32);
    the memory they came from reads zeros from now on."""
    _head(0x44, 9)  # 'D'
    struct.pack_into("<BII", _hdr, 4, sid, pos, frames)
    _out.write(_hdr, 0, 13)


def rx(sid, fill_frames, drop_frames, buf, nbytes):
    """RX session sid: fill_frames more frames entered the ring, then
    drop_frames were lost (ring full); then read nbytes from the ring head
    into buf (from its start). Returns nbytes."""
    _head(0x52, 13)  # 'R'
    # "<BIII" packed in pieces: one pack_into with 4 values on top of 5
    # arguments makes the call frame exceed MicroPython's 11-word on-stack
    # limit, and the frame is then heap-allocated on every call.
    _hdr[4] = sid
    _u32(5, fill_frames)
    _u32(9, drop_frames)
    _u32(13, nbytes)
    _out.write(_hdr, 0, 17)
    if nbytes:
        if _reply(buf, nbytes) != nbytes:
            raise OSError(5)
    return nbytes


def _reply(buf, n):
    # A blocking FileIO readinto(buf, n) reads exactly n bytes. The wait for the model is the
    # simulator's, not the board's (a port copies from its ring in microseconds): the board's
    # clock does not count it (_simport.py).
    t = _simport.host_us()
    n = _inp.readinto(buf, n)
    _simport.waited(t)
    return n


def pin(idx, value, t):
    """Pin idx changed its output value at time t (us)."""
    _head(0x50, 11)  # 'P'
    struct.pack_into("<HBq", _hdr, 4, idx, value, t)
    _out.write(_hdr, 0, 15)


def intr(char):
    """The interrupt character the running code asked for (3 or -1)."""
    _head(0x49, 4)  # 'I'
    struct.pack_into("<i", _hdr, 4, char)
    _out.write(_hdr, 0, 8)
