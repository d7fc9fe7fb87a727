"""Fault injection specs: `KIND[:key=value,...]`.

    drop:offset=N[,dir=in|out]          lose the byte at stream offset N
    corrupt:offset=N[,xor=0x01][,dir=]   flip bits of the byte at offset N
    stall:at=DUR|offset=N,for=DUR        carry nothing either way for a while
    hang:at=DUR|offset=N,for=DUR         the board's CPU stops for a while; its I2S clocks run on
    unplug:at=DUR|offset=N               close the port: the board is gone
    reboot:at=DUR|offset=N               hard reset the board (power cycle)

Offsets count bytes of one direction (`in` = host to board, the default) since the board
started; `at` is time since the board started.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from i2scli.sim.pacing import now_us
from i2scli.units import parse_duration

KINDS = ("drop", "corrupt", "stall", "hang", "unplug", "reboot")


@dataclass
class Fault:
    kind: str
    offset: int | None = None
    at: float | None = None
    direction: str = "in"
    xor: int = 0xFF
    duration: float = 0.0
    fired: bool = False

    def __str__(self) -> str:
        where = f"offset={self.offset}" if self.offset is not None else f"at={self.at}s"
        return f"{self.kind}:{where}"


def parse_fault(spec: str) -> Fault:
    kind, _, rest = spec.partition(":")
    if kind not in KINDS:
        raise ValueError(f"unknown fault {kind!r} in {spec!r} (known: {', '.join(KINDS)})")
    f = Fault(kind)
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"fault option {item!r} in {spec!r} needs key=value")
        try:
            if key == "offset":
                f.offset = int(value, 0)
                if f.offset < 0:
                    raise ValueError
            elif key == "at":
                f.at = parse_duration(value)
            elif key == "for":
                f.duration = parse_duration(value)
            elif key == "xor":
                f.xor = int(value, 0) & 0xFF
            elif key == "dir":
                if value not in ("in", "out"):
                    raise ValueError
                f.direction = value
            else:
                raise ValueError(f"unknown fault option {key!r} in {spec!r}")
        except ValueError as e:
            raise ValueError(str(e) if str(e) else f"invalid value {value!r} for {key} in {spec!r}") from None
    if f.offset is None and f.at is None:
        raise ValueError(f"fault {spec!r} needs offset=N or at=DURATION")
    if f.kind in ("drop", "corrupt") and f.offset is None:
        raise ValueError(f"fault {spec!r} needs offset=N")
    if f.kind in ("stall", "hang") and f.duration <= 0:
        raise ValueError(f"fault {spec!r} needs for=DURATION")
    return f


class LinkFaults:
    """VirtualBoard's faults: those at a byte offset of the link, and those at a time."""

    def _fault_at(self, direction: str, offset: int, n: int) -> Fault | None:
        for f in self.faults:
            if not f.fired and f.offset is not None and f.direction == direction \
                    and offset <= f.offset < offset + n:
                return f
        return None

    def _fire(self, f: Fault) -> None:
        f.fired = True
        if f.kind == "stall":
            self._stall_until = time.monotonic() + f.duration
        elif f.kind == "hang":
            threading.Thread(target=self.hang, args=(f.duration,), daemon=True).start()
        elif f.kind == "reboot":
            self.reboot()
        elif f.kind == "unplug":
            threading.Thread(target=self.unplug, args=(f"fault {f}",), daemon=True).start()

    def _timer_loop(self) -> None:
        t0 = time.monotonic()
        pending = [f for f in self.faults if f.at is not None and f.offset is None]
        for f in sorted(pending, key=lambda f: f.at):
            if self._stopping.wait(max(0.0, t0 + f.at - time.monotonic())):
                return
            self._event({"ev": "fault", "fault": str(f)}, now_us())
            self._fire(f)
