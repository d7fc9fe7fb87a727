"""What the board may say in its JSON frames: every field of HELLO, READY and SUMMARY (each
mode's too), its type and its range, checked where the frame is parsed.

A board, or whatever answers on its port, is untrusted: a field of the wrong type or out of
range is the board's fault, said in one line naming the field and the board (a LinkError,
exit 5), never a traceback further on and never a usage error. Keys the protocol does not
define are dropped; a defined key that is absent stays absent (the host's defaults apply)
unless the frame requires it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from i2scli import protocol as proto
from i2scli.errors import visible
from i2scli.link.errors import LinkError

Check = Callable[[Any], bool]

U32 = 0xFFFFFFFF
TEXT_MAX = 200  # characters of a board's name, version, reason...
LIST_MAX = 4096  # items of a list (a timeline, clock gaps)


def integer(lo: int = 0, hi: int = U32) -> Check:
    return lambda v: type(v) is int and lo <= v <= hi


def flag(v: Any) -> bool:
    """JSON true/false (MicroPython's json writes bools; 0 and 1 are taken too)."""
    return type(v) is bool or (type(v) is int and v in (0, 1))


def text(v: Any) -> bool:
    return type(v) is str and len(v) <= TEXT_MAX


def optional(check: Check) -> Check:
    return lambda v: v is None or check(v)


def list_of(check: Check, most: int = LIST_MAX) -> Check:
    return lambda v: type(v) is list and len(v) <= most and all(check(x) for x in v)


def dict_of(check: Check, most: int = 64) -> Check:
    return lambda v: (type(v) is dict and len(v) <= most
                      and all(text(k) and check(x) for k, x in v.items()))


def pair(first: Check, second: Check) -> Check:
    return lambda v: type(v) is list and len(v) == 2 and first(v[0]) and second(v[1])


TICKS = integer(-(2 ** 63), 2 ** 63)  # ticks and their differences: 30 bits on most ports, 62 on unix
COUNT = integer()

# name: (check, what it must be, in words)
_Field = tuple[Check, str]

HELLO: dict[str, _Field] = {
    "proto": (integer(0, 255), "a protocol number"),
    "agent": (text, "a version string"),
    "source": (text, "a string"),
    "platform": (text, "a string"),
    "machine": (text, "a string"),
    "micropython": (text, "a version string"),
    "mem_free": (COUNT, "a byte count"),
    "i2s": (flag, "true or false"),
    # the input ring: 16 bytes at least (credits of whole header-sized pieces), 1 MiB at most
    "inbuf": (integer(16, 1 << 20), "a byte count from 16 to 1048576"),
    "crc": (flag, "true or false"),
    "io": (list_of(text, 16), "a list of strings"),
    "vcp": (flag, "true or false"),
    "codec": (integer(0, sum(proto.CODER_PARTS.values())), "a number from 0 to 3"),
    "native": (integer(0, 255), "an architecture number"),
}
HELLO_REQUIRED = ("proto",)

READY: dict[str, _Field] = {
    "window": (integer(1, 1 << 24), "a positive byte count"),
    "payload": (integer(1, proto.MAX_PAYLOAD_LIMIT), f"a byte count from 1 to {proto.MAX_PAYLOAD_LIMIT}"),
    "frame_bytes": (integer(1, 64), "a byte count from 1 to 64"),
    "prefill": (integer(0, 1 << 24), "a byte count"),
    "code": (flag, "true or false"),
}
READY_REQUIRED = ("window", "payload")

_SYNC_NEEDED = ("rx_init_us", "tx_write_us")  # what the loop's latency is taken from
_SYNC_VALUE = lambda v: TICKS(v) or text(v)  # noqa: E731  (the loop's clocks: numbers, and which clock)

SUMMARY: dict[str, _Field] = {
    "reason": (text, "a string"),
    "frames": (COUNT, "a frame count"),
    "bytes": (COUNT, "a byte count"),
    "underruns": (COUNT, "a count"),
    "overruns": (COUNT, "a count"),
    "crc_errors": (COUNT, "a count"),
    "resyncs": (COUNT, "a count"),
    "seq_gaps": (COUNT, "a count"),
    "heap_alloc": (integer(-U32, U32), "a byte count"),
    "heap_frames": (COUNT, "a frame count"),
    "heap_method": (optional(text), "a string"),
    "timeline": (list_of(pair(text, TICKS)), "a list of [step, microseconds]"),
    "elapsed_us": (TICKS, "microseconds"),
    "lost_frames": (COUNT, "a frame count"),
    "overrun_at": (list_of(COUNT, 64), "a list of frame counts"),
    "port_xruns": (dict_of(COUNT), "counts by name"),
    "code": (dict_of(TICKS), "counts by name"),
    # the probe's
    "up_bytes": (COUNT, "a byte count"),
    "up_us": (COUNT, "microseconds"),
    "down_bytes": (COUNT, "a byte count"),
    "half_bytes": (COUNT, "a byte count"),
    "half_us": (COUNT, "microseconds"),
    # duplex and loop
    "rx_frames": (COUNT, "a frame count"),
    "tx_frames": (COUNT, "a frame count"),
    "clock_gaps_us": (list_of(TICKS), "a list of microseconds"),
    "switch_delay_us": (COUNT, "microseconds"),
    "sync": (lambda v: dict_of(_SYNC_VALUE)(v) and all(TICKS(v.get(k)) for k in _SYNC_NEEDED),
             "numbers by name, with " + " and ".join(_SYNC_NEEDED)),
}
# what a mode's SUMMARY must hold for the host to use it
SUMMARY_REQUIRED: dict[str, tuple[str, ...]] = {
    "probe": ("up_bytes", "up_us"),
    "loop": ("sync",),
}

# the duplex's phase reports and the baud-rate answers (docs/protocol.md)
PHASE: dict[str, _Field] = {"phase": (text, "a string")}
BAUD: dict[str, _Field] = {
    "ok": (flag, "true or false"),
    "why": (text, "a string"),
    "confirmed": (flag, "true or false"),
    "baud": (integer(0, 1 << 26), "a baud rate"),
    "restore": (integer(0, 1 << 26), "a baud rate"),
}

_KINDS = {"HELLO": (HELLO, HELLO_REQUIRED), "READY": (READY, READY_REQUIRED), "PHASE": (PHASE, ()),
          "BAUD": (BAUD, ())}


class BadField(LinkError):
    """A field of a board's JSON frame that is missing, of the wrong type or out of range."""


def _shown(value: Any) -> str:
    try:
        r = repr(value)
    except RecursionError:  # json.loads nests deeply enough to upset repr
        r = type(value).__name__
    return visible(r if len(r) <= 40 else r[:37] + "...")


def check(kind: str, obj: dict, board: str, required: tuple[str, ...] = ()) -> dict:
    """`obj` (a HELLO, READY or SUMMARY payload already known to be a JSON object) with its
    defined fields checked; `board` names the board in the message. Raises BadField."""
    if kind == "SUMMARY":
        fields, need = SUMMARY, required
    else:
        fields, base = _KINDS[kind]
        need = (*base, *required)
    for name in need:
        if name not in obj:
            raise BadField(f"the board at {board} sent a malformed {kind} frame without `{name}`: "
                           f"not the i2s agent, or a damaged link")
    out = {}
    for name, value in obj.items():
        spec = fields.get(name)
        if spec is None:
            continue  # not defined by this protocol: not used, not kept
        ok, what = spec
        if not ok(value):
            raise BadField(f"the board at {board} sent a bad {kind} field `{name}`: "
                           f"{_shown(value)}, not {what}")
        out[name] = value
    return out
