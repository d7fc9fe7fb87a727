"""The host half of the i2s wire protocol (docs/protocol.md): frames, a streaming decoder, credits.

Everything here is pure computation on bytes; reading and writing the port is `i2scli.link`'s job.

A frame on the wire::

    A5 5A | type (bit 7: CRC32 trailer follows) | seq | len (u16 LE) | hsum | payload | [crc32 LE]

with ``hsum = ~(type + seq + len_lo + len_hi) & 0xFF``. The `Decoder` finds frames in a byte stream that
may also carry REPL chatter, corrupted or lost bytes: on any mismatch it drops the first sync byte of the
candidate and searches again, so the cost of garbage is at most the bytes up to the next good frame.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

__all__ = [
    "SYNC", "PROTO_VERSION", "CRC_FLAG", "HEADER_SIZE", "CRC_SIZE", "MAX_PAYLOAD_LIMIT", "LONG_FRAME",
    "MAX_TX_PAYLOAD", "tx_payload", "FrameType", "Frame", "agent_consts",
    "encode", "encode_json", "frame_size", "Decoder", "Encoder", "CreditGate", "CreditError", "stream_rate",
    "HELLO_KEYS", "START_KEYS", "READY_KEYS", "SUMMARY_KEYS", "SUMMARY_MODE_KEYS", "ERROR_KEYS", "CODER_PARTS",
]

SYNC = b"\xa5\x5a"
PROTO_VERSION = 2  # 2: a frame may be longer than half the window and go out in pieces
CRC_FLAG = 0x80
HEADER_SIZE = 7
CRC_SIZE = 4
MAX_PAYLOAD_LIMIT = 0xFFFF
# bytes on the wire of the DATA frames to the board, at least: a board whose half window is
# smaller reads them a piece at a time and grants credit after each (docs/protocol.md, credits),
# so small input buffers (an ESP32's 256 bytes) no longer mean small frames: ~2 % overhead,
# not 9 %, and a coded stream keeps most of its ratio
LONG_FRAME = 512
MAX_TX_PAYLOAD = 4096


def tx_payload(inbuf: int, frame_bytes: int) -> int:
    """Audio bytes per DATA frame to a board with an input buffer of `inbuf` bytes: half of it,
    or a LONG_FRAME where that is less, in whole frames of `frame_bytes`."""
    room = max(inbuf // 2, LONG_FRAME) - HEADER_SIZE - CRC_SIZE
    return min(room, MAX_TX_PAYLOAD) // frame_bytes * frame_bytes


class FrameType(IntEnum):
    """Frame types (bits 0-6 of the type byte)."""

    HELLO = 1
    START = 2
    READY = 3
    DATA = 4
    CREDIT = 5
    END = 6
    SUMMARY = 7
    ERROR = 8
    ABORT = 9
    PROBE = 10
    KEEPALIVE = 11
    SWITCH = 12
    PHASE = 13
    BAUD = 14  # host proposes / confirms / asks the UART rate; the agent answers (docs/protocol.md)


def agent_consts() -> dict[str, int]:
    """The protocol's numbers as the board agent (firmware/i2s_*.py) names them: `_NAME` for each
    frame type, the sync bytes, CRC flag and header size, and PROTO. The host generates a
    ``NAME = const(value)`` line for each one a module names into that module when it uploads or
    installs it (link/agent_code.py): MicroPython consts exist at compile time only and the board
    has no i2scli, so this is how the board's values stay these."""
    return {"PROTO": PROTO_VERSION, "_S0": SYNC[0], "_S1": SYNC[1], "_CRC": CRC_FLAG, "_HDR": HEADER_SIZE,
            **{f"_{t.name}": int(t) for t in FrameType}}


# The JSON frames' keys (docs/protocol.md). The board agent keeps its own copies in the dicts it
# sends and reads; tests/unit/test_protocol_source.py holds them and the docs to these.
HELLO_KEYS = ("proto", "agent", "source", "platform", "machine", "micropython", "mem_free", "i2s", "inbuf",
              "crc", "io", "vcp", "codec", "native")
# what the agent reads from START: every mode's, duplex's and loop's
START_KEYS = ("mode", "id", "sck", "ws", "sd", "mck", "bits", "format", "rate", "ibuf", "payload", "crc", "io",
              "timeout_ms", "shift", "frames", "discard_frames", "probe_up", "probe_down", "probe_both", "window",
              "code", "order", "rx", "tx", "dir", "dir_rx_level", "switch_delay_us", "lead_in_frames", "rx_frames",
              "prefill", "tx_half")
READY_KEYS = ("window", "payload", "frame_bytes", "prefill", "code")
# every stream's SUMMARY (`overrun_at` RX, `port_xruns` where the port counts, `code` coded streams) ...
SUMMARY_KEYS = ("reason", "frames", "bytes", "underruns", "overruns", "crc_errors", "resyncs", "seq_gaps",
                "heap_alloc", "heap_frames", "heap_method", "timeline", "elapsed_us", "lost_frames", "overrun_at",
                "port_xruns", "code")
# ... and what a mode adds to it (or sets anew)
SUMMARY_MODE_KEYS = {
    "probe": ("up_bytes", "up_us", "down_bytes", "half_bytes", "half_us"),
    "duplex": ("rx_frames", "tx_frames", "clock_gaps_us", "switch_delay_us", "underruns", "overruns", "lost_frames",
               "overrun_at"),
    "loop": ("rx_frames", "tx_frames", "underruns", "overruns", "lost_frames", "overrun_at", "sync"),
}
ERROR_KEYS = ("error", "where")
# HELLO's `codec` bits: which of the board's wire coder classes (firmware/wirecode.py) is there
CODER_PARTS = {"Decoder": 1, "Encoder": 2}

_HEADER = struct.Struct("<2sBBHB")  # sync, type byte, seq, len, hsum
_FIELDS = struct.Struct("<BBBBB")  # type byte, seq, len_lo, len_hi, hsum (read from offset 2)
_U32 = struct.Struct("<I")
# type byte (flag included) -> FrameType, or None for a type this protocol version does not know
_KNOWN = {int(t): t for t in FrameType}
_TYPE_OF: tuple[FrameType | None, ...] = tuple(_KNOWN.get(b & 0x7F) for b in range(256))


def frame_size(payload_len: int, crc: bool = True) -> int:
    """Bytes on the wire of a frame carrying `payload_len` payload bytes."""
    return HEADER_SIZE + payload_len + (CRC_SIZE if crc else 0)


def encode(ftype: int, seq: int, payload: bytes = b"", crc: bool = True) -> bytes:
    """One frame as bytes on the wire.

    `ftype` is a frame type (0..0x7F; receivers of this version drop types `FrameType` does not list), `seq`
    0..255, `payload` at most `MAX_PAYLOAD_LIMIT` bytes. With `crc`, the type byte carries `CRC_FLAG` and the
    payload's CRC32 (little-endian) follows it. Raises ValueError for values out of range.
    """
    if not 0 <= ftype <= 0x7F:
        raise ValueError(f"frame type {ftype!r} out of range 0..127")
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"sequence number {seq!r} out of range 0..255")
    n = len(payload)
    if n > MAX_PAYLOAD_LIMIT:
        raise ValueError(f"payload of {n} bytes exceeds the limit of {MAX_PAYLOAD_LIMIT}")
    tb = int(ftype) | (CRC_FLAG if crc else 0)
    hsum = ~(tb + seq + (n & 0xFF) + (n >> 8)) & 0xFF
    head = _HEADER.pack(SYNC, tb, seq, n, hsum)
    if crc:
        return b"".join((head, payload, _U32.pack(zlib.crc32(payload))))
    return head + bytes(payload)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def encode_json(ftype: int, seq: int, obj: Any, crc: bool = True) -> bytes:
    """A frame whose payload is `obj` as compact JSON (UTF-8)."""
    return encode(ftype, seq, _dumps(obj), crc)


@dataclass(frozen=True, slots=True, repr=False)
class Frame:
    """A decoded frame. `crc` says whether it carried (a verified) CRC32 trailer."""

    type: FrameType
    seq: int
    payload: bytes = b""
    crc: bool = True

    def json(self) -> Any:
        """The payload parsed as JSON (HELLO, START, READY, SUMMARY, ERROR). Raises ValueError if it is not."""
        return json.loads(self.payload)

    def credit(self) -> int:
        """The byte count of a CREDIT payload (u32 LE). Raises ValueError if the payload is not 4 bytes."""
        if len(self.payload) != 4:
            raise ValueError(f"CREDIT payload must be 4 bytes, got {len(self.payload)}")
        return _U32.unpack(self.payload)[0]

    def encode(self) -> bytes:
        """This frame as bytes on the wire."""
        return encode(self.type, self.seq, self.payload, self.crc)

    @property
    def wire_size(self) -> int:
        """Bytes this frame takes on the wire."""
        return frame_size(len(self.payload), self.crc)

    def __repr__(self) -> str:
        p = self.payload
        shown = repr(p[:32]) + (f"...+{len(p) - 32}" if len(p) > 32 else "")
        name = self.type.name if isinstance(self.type, FrameType) else str(self.type)
        return f"Frame({name}, seq={self.seq}, payload={shown}, crc={self.crc})"


class Decoder:
    """Incremental frame decoder for one direction of the link (board -> host on the host).

    `feed` takes bytes as they arrive and returns the complete, valid frames among them. The decoder holds
    back at most one incomplete candidate frame, so its buffer never exceeds `max_buffer` bytes
    (``frame_size(max_payload) + a small margin``) whatever arrives. A candidate is a frame when its header
    passes ``hsum``, its type is a known `FrameType`, ``len <= max_payload`` and, if it has the CRC flag, the
    CRC32 of its payload matches. On any mismatch the decoder drops one byte (the first sync byte) and
    searches again, so a real frame inside a false candidate is still found.

    Counters (ints, never reset): `frames` (good frames), `crc_errors` (complete candidates with the CRC flag
    whose CRC failed), `skipped_bytes` (bytes that were not part of a good frame), `resyncs` (runs of
    skipped bytes, i.e. times the decoder lost sync and had to search for a good frame; counted when a run
    starts, so chatter before the first frame or after the last one counts too), `seq_gaps`
    (good frames whose seq is not the previous good frame's seq + 1 mod 256; the first frame sets it).

    Note: a false candidate (garbage that happens to hold ``A5 5A`` and a valid header) waits for up to
    ``len`` more bytes, so it can delay the frames behind it until they have arrived or `flush` is called;
    it cannot lose them unless it is itself a complete valid frame (for a CRC frame: chance 2**-32).
    """

    _MARGIN = 64

    def __init__(self, max_payload: int = 4096, garbage_keep: int = 512) -> None:
        """`max_payload`: the largest payload accepted (0..MAX_PAYLOAD_LIMIT); `garbage_keep`: how many of
        the most recently skipped bytes `pending_garbage` keeps."""
        if garbage_keep < 0:
            raise ValueError("garbage_keep must not be negative")
        self.max_payload = max_payload
        self._buf = bytearray()
        self._garbage = bytearray()
        self._garbage_keep = garbage_keep
        self._lost = False  # inside a run of skipped bytes
        self._expect: int | None = None  # seq of the next frame
        self.frames = 0
        self.crc_errors = 0
        self.skipped_bytes = 0
        self.resyncs = 0
        self.seq_gaps = 0

    @property
    def max_payload(self) -> int:
        """The largest payload this decoder accepts. May be changed between feeds (e.g. to START's `payload`):
        a larger limit applies at once; with a smaller one, a held-back candidate that no longer fits is
        dropped as the next bytes arrive."""
        return self._max_payload

    @max_payload.setter
    def max_payload(self, value: int) -> None:
        if not 0 <= value <= MAX_PAYLOAD_LIMIT:
            raise ValueError(f"max_payload {value!r} out of range 0..{MAX_PAYLOAD_LIMIT}")
        self._max_payload = value
        self._cap = frame_size(value) + self._MARGIN

    @property
    def max_buffer(self) -> int:
        """The most bytes the decoder ever holds between calls or while decoding."""
        return self._cap

    @property
    def buffered(self) -> int:
        """Bytes held back: the start of a frame (or of a candidate) whose rest has not arrived yet."""
        return len(self._buf)

    def counters(self) -> dict[str, int]:
        """The counters by name, as in the agent's SUMMARY."""
        return {"frames": self.frames, "crc_errors": self.crc_errors, "resyncs": self.resyncs,
                "seq_gaps": self.seq_gaps, "skipped_bytes": self.skipped_bytes}

    @property
    def in_garbage(self) -> bool:
        """Whether the bytes since the last good frame were skipped (a run not yet ended)."""
        return self._lost

    def pending_garbage(self, clear: bool = False) -> bytes:
        """The last `garbage_keep` skipped bytes (e.g. a traceback the board's REPL printed), oldest first.

        With `clear`, forget them afterwards (the counters are not affected)."""
        out = bytes(self._garbage)
        if clear:
            self._garbage.clear()
        return out

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Decode the next bytes of the stream; returns the frames completed by them, in order."""
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        out: list[Frame] = []
        buf = self._buf
        n = len(data)
        off = 0
        while off < n:
            if buf:
                # Resolve the held-back candidate: top up the buffer (never beyond its cap) and decode.
                held = len(buf)
                take = min(n - off, max(self._cap - held, 1))  # held > cap only after max_payload shrank
                buf += data[off:off + take]
                off += take
                pos = self._scan(buf, 0, False, out)
                if pos >= held:
                    # Past the held-back bytes: go on decoding straight from `data`, where the tail starts.
                    off -= len(buf) - pos
                    buf.clear()
                else:
                    del buf[:pos]
            else:
                # Nothing held back: decode straight from `data`, keep only an incomplete tail.
                pos = self._scan(data, off, False, out)
                buf += data[pos:]
                break
        return out

    def flush(self) -> list[Frame]:
        """End of stream (for now): treat the held-back candidate as garbage, decode what follows it.

        Call it when no more bytes are coming (the agent returned, the port closed): a false candidate can
        otherwise hold back real frames behind it. Feeding may continue afterwards."""
        out: list[Frame] = []
        buf = self._buf
        del buf[:self._scan(buf, 0, True, out)]
        return out

    def _skip(self, b: bytes | bytearray, start: int, end: int) -> None:
        """Account for `b[start:end]` as skipped bytes (one run, possibly continuing the current one)."""
        self.skipped_bytes += end - start
        if not self._lost:
            self._lost = True
            self.resyncs += 1
        keep = self._garbage_keep
        if keep:
            g = self._garbage
            g += b[max(start, end - keep):end]
            if len(g) > keep:
                del g[:len(g) - keep]

    def _scan(self, b: bytes | bytearray, pos: int, final: bool, out: list[Frame]) -> int:
        """Decode frames from `b[pos:]` into `out`; returns where the undecided tail begins.

        The tail is empty, a lone first sync byte, or a candidate that needs more bytes (never with `final`).
        Skipped bytes are accounted for once per run, so dropping byte after byte stays cheap."""
        n = len(b)
        find = b.find
        unpack = _FIELDS.unpack_from
        types = _TYPE_OF
        maxp = self._max_payload
        run = pos  # start of the current run of skipped bytes (== pos when there is none)
        with memoryview(b) as mv:
            while True:
                i = find(SYNC, pos)
                if i < 0:
                    pos = n - 1 if (not final and n > pos and b[n - 1] == 0xA5) else n
                    break
                if n - i < HEADER_SIZE:
                    if final:
                        pos = i + 1
                        continue
                    pos = i
                    break
                tb, seq, lo, hi, hs = unpack(b, i + 2)
                ln = lo | (hi << 8)
                ftype = types[tb]
                if hs != ~(tb + seq + lo + hi) & 0xFF or ftype is None or ln > maxp:
                    pos = i + 1
                    continue
                start = i + HEADER_SIZE
                end = start + ln
                crc = tb >= CRC_FLAG
                stop = end + CRC_SIZE if crc else end
                if stop > n:
                    if final:
                        pos = i + 1
                        continue
                    pos = i
                    break
                if crc and zlib.crc32(mv[start:end]) != _U32.unpack_from(b, end)[0]:
                    self.crc_errors += 1
                    pos = i + 1
                    continue
                if i > run:
                    self._skip(b, run, i)
                self._lost = False
                exp = self._expect
                if exp is not None and seq != exp:
                    self.seq_gaps += 1
                self._expect = (seq + 1) & 0xFF
                out.append(Frame(ftype, seq, bytes(mv[start:end]), crc))
                self.frames += 1
                pos = run = stop
        if pos > run:
            self._skip(b, run, pos)
        return pos


class Encoder:
    """Frames for one direction (host -> board): numbers them 0, 1, ... mod 256, with CRC32 or not.

    `crc` may be changed between frames (it is on until START says otherwise)."""

    def __init__(self, crc: bool = True, seq: int = 0) -> None:
        if not 0 <= seq <= 0xFF:
            raise ValueError(f"sequence number {seq!r} out of range 0..255")
        self.crc = crc
        self._seq = seq

    @property
    def seq(self) -> int:
        """The sequence number of the next frame."""
        return self._seq

    def size(self, payload_len: int) -> int:
        """Bytes on the wire of the next frame with `payload_len` payload bytes."""
        return frame_size(payload_len, self.crc)

    def frame(self, ftype: int, payload: bytes = b"", crc: bool | None = None) -> bytes:
        """The next frame as bytes on the wire (`crc` False: without the trailer, for a coded
        DATA payload that carries its own checksum)."""
        data = encode(ftype, self._seq, payload, self.crc if crc is None else crc and self.crc)
        self._seq = (self._seq + 1) & 0xFF
        return data

    def json(self, ftype: int, obj: Any) -> bytes:
        """The next frame, with `obj` as its compact JSON payload."""
        return self.frame(ftype, _dumps(obj))

    def frames(self, ftype: int, payloads: Iterable[bytes]) -> bytes:
        """Consecutive frames of one type, one per payload, joined."""
        return b"".join([self.frame(ftype, p) for p in payloads])


class CreditError(RuntimeError):
    """An attempt to send more than the board granted."""


class CreditGate:
    """Host-side flow-control accounting: bytes granted by READY/CREDIT versus bytes sent.

    Starts with no credit. Credits count bytes on the wire (headers and CRCs included)."""

    def __init__(self) -> None:
        self._granted = 0
        self._spent = 0

    @property
    def granted(self) -> int:
        """Total bytes granted so far."""
        return self._granted

    @property
    def spent(self) -> int:
        """Total bytes sent so far."""
        return self._spent

    @property
    def available(self) -> int:
        """Bytes that may still be sent."""
        return self._granted - self._spent

    def grant(self, nbytes: int) -> None:
        """Add credit (READY's `window`, a CREDIT frame's count). Raises ValueError if negative."""
        if nbytes < 0:
            raise ValueError(f"cannot grant a negative credit ({nbytes})")
        self._granted += nbytes

    def can_send(self, nbytes: int) -> bool:
        """Whether `nbytes` fit the remaining credit."""
        return 0 <= nbytes <= self._granted - self._spent

    def spend(self, nbytes: int) -> None:
        """Account for `nbytes` sent. Raises CreditError (state unchanged) if they do not fit the credit,
        ValueError if negative."""
        if nbytes < 0:
            raise ValueError(f"cannot spend a negative byte count ({nbytes})")
        if nbytes > self._granted - self._spent:
            raise CreditError(f"sending {nbytes} bytes exceeds the credit of {self.available} bytes")
        self._spent += nbytes

    def __repr__(self) -> str:
        return f"CreditGate(granted={self._granted}, spent={self._spent})"


def stream_rate(rate: int, bits: int, channels: int, payload: int, crc: bool = True) -> float:
    """Bytes per second on the wire for an audio stream of DATA frames with `payload` audio bytes each.

    `bits` is the sample size on the bus (16 or 32, the bus buffer's sample width), `channels` 1 or 2;
    framing overhead is the header (7) and, with `crc`, the CRC (4) of every DATA frame. `payload` must be a
    whole number of audio frames. Compare the result with the link rate a probe measured.
    """
    if bits not in (16, 32):
        raise ValueError(f"bits must be 16 or 32, not {bits!r}")
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, not {channels!r}")
    if rate <= 0:
        raise ValueError(f"rate must be positive, not {rate!r}")
    frame_bytes = bits // 8 * channels
    if payload <= 0 or payload % frame_bytes or payload > MAX_PAYLOAD_LIMIT:
        raise ValueError(f"payload must be a positive multiple of {frame_bytes} bytes up to "
                         f"{MAX_PAYLOAD_LIMIT}, not {payload!r}")
    return rate * frame_bytes * frame_size(payload, crc) / payload
