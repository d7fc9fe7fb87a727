"""The bus between board and codec: who drives the shared SD line, whether the bit clock runs.

Fed, in time order, with what the board did (pin modes and levels, I2S sessions starting and
stopping); answers who drove SD at any time, where both did (conflicts), where the bit clock
stopped between sessions (gaps), and writes it all as a VCD trace.

The codec follows a DIR pin: while DIR is at the receive level it drives SD, starting
`drive_delay` after DIR got there and stopping `release_delay` after DIR left. Until the
board configures the DIR pin as an output the codec is taken as not wired for half-duplex:
it never drives SD and RX reads the source as it is.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

OUTPUT_MODES = {"out", "open_drain"}


class Signal:
    """A piecewise-constant signal over time (µs). A new level at t supersedes anything
    scheduled at or after t (a delayed transition overtaken by a newer one)."""

    def __init__(self, initial):
        self.times: list[int] = [-(1 << 62)]
        self.values: list = [initial]

    def set(self, t: int, value) -> None:
        while len(self.times) > 1 and self.times[-1] >= t:
            self.times.pop()
            self.values.pop()
        if self.values[-1] != value:
            self.times.append(t)
            self.values.append(value)

    def at(self, t: int):
        return self.values[bisect.bisect_right(self.times, t) - 1]

    def at_many(self, times: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(np.asarray(self.times, dtype=np.int64), times, side="right") - 1
        return np.asarray(self.values)[idx]

    def changes(self):
        return list(zip(self.times[1:], self.values[1:]))


def _intervals(times: list[int], states: list[bool], t_end: int) -> list[tuple[int, int]]:
    out, start = [], None
    for t, s in zip(times, states):
        if s and start is None:
            start = t
        elif not s and start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, t_end))
    return out


@dataclass
class Session:
    sid: int
    mode: str
    sd: object
    rate: int
    bits: int
    channels: int
    t0: int
    t1: int | None = None


@dataclass
class BusModel:
    dir_pin: object = None
    dir_rx_level: int = 0
    drive_delay_us: int = 0
    release_delay_us: int = 0
    sd_net: set = field(default_factory=set)

    def __post_init__(self):
        self.sd_net = {str(p) for p in self.sd_net}
        self.pads: dict[str, Signal] = {}  # pad -> Signal(bool): the board drives it
        self.dir = Signal(None)  # None until DIR is an output
        self.codec = Signal(False)  # the codec drives SD
        self.clock = Signal(0)  # running I2S sessions (bit clock runs while > 0)
        self.ws_rate = Signal(0)
        self.sessions: dict[int, Session] = {}
        self.history: list[Session] = []
        self._running = 0
        self.t_first: int | None = None

    # -- inputs -------------------------------------------------------------------------
    def _pad(self, name) -> Signal:
        name = str(name)
        if name not in self.pads:
            self.pads[name] = Signal(False)
        return self.pads[name]

    def _seen(self, t: int) -> None:
        if self.t_first is None:
            self.t_first = t

    def pin_mode(self, name, mode: str, value, t: int) -> None:
        self._seen(t)
        name = str(name)
        if name == str(self.dir_pin):
            self.set_dir(value if mode in OUTPUT_MODES else None, t)
        if mode in OUTPUT_MODES:
            self._pad(name).set(t, True)
        elif mode == "in":
            self._pad(name).set(t, False)

    def pin_value(self, name, value: int, t: int) -> None:
        if str(name) == str(self.dir_pin) and self.dir.at(t) is not None:
            self.set_dir(value, t)

    def set_dir(self, level, t: int) -> None:
        self.dir.set(t, level)
        if level is None:
            self.codec.set(t, False)
        elif level == self.dir_rx_level:
            self.codec.set(t + self.drive_delay_us, True)
        else:
            self.codec.set(t + self.release_delay_us, False)

    def i2s_init(self, s: Session) -> None:
        self._seen(s.t0)
        self.sessions[s.sid] = s
        self.history.append(s)
        self.sd_net.add(str(s.sd))
        # TX drives its pad from init; RX makes its pad an input.
        self._pad(s.sd).set(s.t0, s.mode == "tx")
        self._running += 1
        self.clock.set(s.t0, self._running)
        self.ws_rate.set(s.t0, s.rate)

    def i2s_deinit(self, sid: int, t: int) -> None:
        s = self.sessions.pop(sid, None)
        if s is None:
            return
        s.t1 = t
        self._running = max(0, self._running - 1)
        self.clock.set(t, self._running)
        if not self._running:
            self.ws_rate.set(t, 0)
        # A TX pad keeps driving after deinit until the board makes it an input.

    # -- queries ------------------------------------------------------------------------
    def board_drives(self, t: int) -> bool:
        return any(self.pads[p].at(t) for p in self.sd_net if p in self.pads)

    def rx_states(self, times: np.ndarray) -> np.ndarray:
        """Per time: 0 = the codec's data, 1 = nobody drives (reads 0), 2 = conflict."""
        if self.dir.changes() == []:
            return np.zeros(len(times), np.int8)
        codec = self.codec.at_many(times).astype(bool)
        board = np.zeros(len(times), bool)
        for p in self.sd_net:
            if p in self.pads:
                board |= self.pads[p].at_many(times).astype(bool)
        return np.where(codec & board, 2, np.where(codec, 0, 1)).astype(np.int8)

    def _all_times(self) -> list[int]:
        ts = set()
        for sig in [self.codec, self.clock, self.dir, *self.pads.values()]:
            ts.update(t for t, _ in sig.changes())
        return sorted(ts)

    def conflicts(self, t_end: int) -> list[tuple[int, int]]:
        times = self._all_times()
        states = [self.codec.at(t) and self.board_drives(t) for t in times]
        return _intervals(times, states, t_end)

    def clock_gaps(self) -> list[tuple[int, int]]:
        """Stops of the bit clock between two sessions."""
        changes = self.clock.changes()
        gaps, stopped = [], None
        for t, n in changes:
            if n == 0:
                stopped = t
            elif stopped is not None:
                gaps.append((stopped, t))
                stopped = None
        return gaps

    def driver_at(self, t: int) -> int:
        """0 none, 1 board, 2 codec, 3 both."""
        return (1 if self.board_drives(t) else 0) | (2 if self.codec.at(t) else 0)

    # -- output -------------------------------------------------------------------------
    def write_vcd(self, path: str, t_origin: int, t_end: int) -> None:
        times = sorted(set(self._all_times()) | {t for t, _ in self.ws_rate.changes()})
        with open(path, "w") as f:
            f.write("$version i2s virtual board $end\n$timescale 1us $end\n")
            f.write("$scope module board $end\n")
            f.write("$var wire 1 ! bclk $end\n$var real 64 \" ws_rate $end\n")
            f.write("$var wire 1 # dir $end\n$var wire 2 $ sd_driver $end\n")
            f.write("$var wire 1 % conflict $end\n$upscope $end\n$enddefinitions $end\n")

            def dump(t):
                d = self.driver_at(t)
                lvl = self.dir.at(t)
                return {
                    "!": f"{1 if self.clock.at(t) else 0}!",
                    '"': f"r{self.ws_rate.at(t)} \"",
                    "#": f"{'x' if lvl is None else lvl}#",
                    "$": f"b{d:02b} $",
                    "%": f"{1 if d == 3 else 0}%",
                }

            last = dump(t_origin)
            f.write("#0\n$dumpvars\n" + "\n".join(last.values()) + "\n$end\n")
            for t in times:
                if t < t_origin:
                    continue
                now = dump(t)
                diff = [v for k, v in now.items() if last[k] != v]
                if diff:
                    f.write(f"#{t - t_origin}\n" + "\n".join(diff) + "\n")
                last = now
            f.write(f"#{max(0, t_end - t_origin)}\n")
