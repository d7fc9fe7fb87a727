"""A live source's clock matched to the board's, between the source's reader and the wire
conversion (audio.play_blocks): `take` sees each block the stream takes from the reader and
samples the reserve left behind it; `resample` turns the source's audio into the board's
clock with the ratio the loop (clockmatch.py) holds.

Modes: "live" (--live) matches from the start: what piled up while the board was made ready
beyond the target is skipped once, before the first audio, so the latency starts where it is
held. "auto" (a pipe, a FIFO, standard input) plays bit-exact, as it comes, while the reserve
lasts; once it runs low (the board's clock faster than the source's), it matches from there
on. A reader's queue that is full says the source waits for the board (a program writing a
file into the pipe, or a source faster than the board): auto takes it as paced, nothing to
match; --live takes it as drift and corrects it. "off" (--no-live) only measures."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import numpy as np

from i2scli.live.clockmatch import DriftLoop, LiveParams
from i2scli.live.resample import TAPS, Resampler

AUTO_LOW_S = 0.02  # auto: the reserve below which the board is outrunning the source
DRAIN_S = 0.3  # --live: the source's backlog has come through the pipes this long after the start
LATCH_S = 1.0  # --live: the ring has filled this long after the skip
LATCH_MIN_S = 0.04  # --live: the least reserve held (two of a stream's blocks)
SLOPE_FROM_S = 1.0  # unmatched: the fill's slope is taken from then on
SETTLE_LOOPS = 3  # the fill band is taken from this many loop times after the first audio on
END_GUARD_S = 0.5  # the reports leave out the stream's last half second


class Slope:
    """Least squares of fill against time: the drift when nothing corrects it."""

    def __init__(self):
        self.n = self.st = self.sf = self.stt = self.stf = 0.0

    def add(self, t: float, f: float) -> None:
        self.n += 1
        self.st += t
        self.sf += f
        self.stt += t * t
        self.stf += t * f

    def slope(self) -> float | None:
        d = self.n * self.stt - self.st * self.st
        return None if self.n < 20 or d <= 0 else (self.n * self.stf - self.st * self.sf) / d


def _slope_of(sums: dict) -> float | None:
    fit = Slope()
    vars(fit).update(sums)
    return fit.slope()


class LiveMatch:
    NOUN = "reserve"  # what the fill is, in the progress line
    SIGN = 1  # drift = SIGN * (the mean correction less the fill's slope): + is the board's clock fast

    def __init__(self, rate: int, channels: int, backlog: Callable[[], tuple[int, int]], mode: str, kind: str,
                 params: LiveParams | None = None, clock: Callable[[], float] = time.monotonic):
        if mode not in ("live", "auto", "off"):
            raise ValueError(f"mode is live, auto or off, not {mode!r}")
        self.rate, self.channels, self.mode, self.kind = rate, channels, mode, kind
        self.params = params or LiveParams()
        self.backlog, self.clock = backlog, clock
        self.loop = DriftLoop(rate, self.params)
        self.engaged = mode == "live"  # the resampler is in the path
        self.resampler: Resampler | None = None
        self.tail: np.ndarray | None = None  # the last audio passed through as it is
        self.skipping = False
        self.ring = 0
        self.latch_at: float | None = None  # --live: when the reserve's level is taken as the target
        self.drain_until: float | None = None
        self.held: list[np.ndarray] = []
        self.skipped = 0
        self.t0: float | None = None  # the first audio taken
        self.band: list[float] | None = None  # smoothed fill, min and max, once settled
        self.slope = Slope()
        self.held_fit = Slope()  # matched: the fill's slope over the settled time
        self.snaps: deque = deque()  # (time, the books then): see _snap
        self.watching = False  # unmatched: past the start, the fill is watched
        self.t_settled: float | None = None  # the correction's mean over the settled time
        self.u_sum = self.u_time = 0.0
        self.taken = 0
        self.engaged_at: float | None = None if mode != "live" else 0.0

    def describe(self) -> str:
        """For the settings line."""
        if self.mode == "off":
            return f"{self.kind}, clocks not matched (--no-live)"
        how = "matched" if self.mode == "live" else "matched if they drift apart"
        return (f"{self.kind}, live: clocks {how} (reserve {self.params.target_s * 1000:.0f} ms, "
                f"within ±{self.params.max_ppm:g} ppm)")

    def start(self, ring_frames: int = 0) -> None:
        """The stream is about to carry audio: --live skips what piled up meanwhile beyond the
        reserve and what the board's ring (`ring_frames`, at the source's rate) takes at once."""
        self.skipping = self.mode == "live"
        self.ring = ring_frames

    def _drain(self, block: np.ndarray, queued: int, now: float) -> np.ndarray:
        """--live, from the start of the stream for DRAIN_S: the source's backlog (in the
        reader and the pipes before it) comes in; all but the reserve and what the ring takes
        at once is skipped, the oldest first, before anything plays."""
        if self.drain_until is None:
            self.drain_until = now + DRAIN_S
        if len(block):
            self.held.append(block)
        keep = self.loop.target + self.ring
        while self.held and queued + sum(map(len, self.held)) - len(self.held[0]) >= keep:
            self.skipped += len(self.held.pop(0))
        if now < self.drain_until or queued + sum(map(len, self.held)) < keep:
            # a source with no backlog (a sound server's monitor is silent until something plays)
            # is waited for until it has given the reserve and the ring: the latency is built
            # before the first audio, or the board would take each block as it came, its ring
            # never filling, and no reserve would ever be there to hold
            return block[:0]
        self.skipping = False
        out = np.concatenate(self.held) if self.held else block
        self.held = []
        self.loop.restart(queued, now)
        self.latch_at = now + LATCH_S
        return out

    def rest(self) -> np.ndarray | None:
        """The source has ended: what is still held back (waited for at the start) plays."""
        if not self.skipping:
            return None
        self.skipping = False
        out = np.concatenate(self.held) if self.held else None
        self.held = []
        return out

    def take(self, block: np.ndarray) -> np.ndarray:
        now = self.clock()
        queued, capacity, arrived = self.backlog()
        target = self.loop.target
        # the source delivers in blocks but plays continuously: what it has made since its
        # newest block counts (up to a block), so the fill is not a staircase of block steps
        since = 0.0 if arrived is None else min(max(0.0, now - arrived) * self.rate, float(len(block)))
        if self.skipping:
            block = self._drain(block, queued, now)
            if self.skipping:
                return block
        if len(block) and self.t0 is None:
            self.t0 = now
        self.taken += len(block)
        full = queued + 2 * len(block) > capacity if len(block) else False
        # an empty block, or nothing new for three blocks' time: the source paused or ended, which
        # says nothing of its clock; a full queue, unless --live: the source waits for the board
        quiet = arrived is None or now - arrived > 3 * len(block) / self.rate
        hold = not len(block) or quiet or (full and self.mode != "live") or self.t0 is None
        fill = queued + since
        if self.latch_at is not None and now >= self.latch_at and not hold:
            # once the ring has filled: the reserve is held where it settled (near the target)
            self.latch_at = None
            self.loop.target = min(max(self.loop.fill, LATCH_MIN_S * self.rate), 2 * target)
        if not self.engaged:
            self.loop.update(fill, now, hold=hold)
            self.loop.u = self.loop.integral = 0.0  # the fill smoothed only: the ratio stays exactly 1
            settled = self.t0 is not None and now - self.t0 >= SLOPE_FROM_S  # past the rush of the start
            if settled and not hold and not self.watching:
                self.watching = True
                self.loop.restart(fill, now)
            if not hold and settled:
                self.slope.add(now - self.t0, fill)
                if self.mode == "auto" and self.loop.fill < AUTO_LOW_S * self.rate:
                    self.engaged, self.engaged_at = True, now - self.t0
        else:
            self.loop.update(fill, now, hold=hold, steer=self.latch_at is None)
        self._account(now, fill, hold)
        return block

    def _account(self, now: float, fill: float, hold: bool) -> None:
        """The books of a fill sample: the band, the correction's mean and the fill's slope once
        settled, and a snapshot of them (_snap)."""
        if self.t0 is not None and now - self.t0 >= SETTLE_LOOPS * self.params.loop_s and not hold:
            f = self.loop.fill
            self.band = [min(self.band[0], f), max(self.band[1], f)] if self.band else [f, f]
            if self.engaged and self.t_settled is not None:
                self.u_sum += self.loop.u * (now - self.t_settled)
                self.u_time += now - self.t_settled
                self.held_fit.add(now - self.t0, fill)
            self.t_settled = now
        else:
            self.t_settled = None
        self._snap(now)

    def _snap(self, now: float) -> None:
        """The books as they stood, for END_GUARD_S: a stream's last moments (the source ending,
        its last audio drained with nothing after it) say nothing of the clocks."""
        self.snaps.append((now, [list(self.band) if self.band else None, self.u_sum, self.u_time,
                                 self.loop.integral, vars(self.slope).copy(), self.loop.fill,
                                 vars(self.held_fit).copy()]))
        while len(self.snaps) > 1 and self.snaps[1][0] <= now - END_GUARD_S:
            self.snaps.popleft()

    def _books(self) -> tuple:
        """What the summary reports: the books END_GUARD_S before the last block."""
        if not self.snaps:
            return (self.band, self.u_sum, self.u_time, self.loop.integral, vars(self.slope), self.loop.fill,
                    vars(self.held_fit))
        return tuple(self.snaps[0][1])

    @property
    def ratio(self) -> float:
        return 1.0 + self.loop.u

    def passed(self, x: np.ndarray) -> None:
        """Audio that went out as it is (float, (n, channels)): the last of it is where the
        resampler starts from once it is needed, so the switch is seamless."""
        self.tail = np.concatenate([self.tail, x])[-TAPS:] if self.tail is not None else x[-TAPS:]

    def resample(self, x: np.ndarray) -> np.ndarray:
        """Float audio (n, channels) at the source's clock into the board's (as it is until the
        clocks need matching)."""
        if not self.engaged:
            self.passed(x)
            return x
        if self.resampler is None:
            self.resampler = Resampler(x.shape[1], self.tail)
        return self.resampler.process(x, self.ratio)

    def flush(self) -> np.ndarray | None:
        return self.resampler.flush(self.ratio) if self.resampler is not None else None

    def drift_ppm(self) -> float | None:
        """The board's clock against the source's (+: the board's runs fast). Matched: the mean
        correction over the settled time less what of it moved the reserve (d = u - dfill/dt,
        the slope a least-squares fit); before that, the loop's integral. Unmatched: the fill's
        slope."""
        _, u_sum, u_time, integral, slope, _, held = self._books()
        if self.engaged:
            moved = _slope_of(held)
            if u_time < 1.0 or moved is None:
                return self.SIGN * integral * 1e6
            return self.SIGN * (u_sum / u_time - moved / self.rate) * 1e6
        s = _slope_of(slope)
        return None if s is None else -self.SIGN * s / self.rate * 1e6

    def view(self) -> str:
        """One line for the progress view: the drift measured so far and the reserve held. (Read
        from the view's thread while the stream's updates the books: a figure read mid-update is
        only a figure of the moment, and none is better than a traceback.)"""
        try:
            drift, fill = self.drift_ppm(), self.loop.fill
        except (ValueError, ZeroDivisionError, RuntimeError, IndexError):
            return ""
        parts = [] if drift is None else [f"drift {drift:+.0f} ppm" + (" (corrected)" if self.engaged else "")]
        if fill is not None:
            parts.append(f"{self.NOUN} {fill * 1000 / self.rate:.0f} ms")
        return ", ".join(parts)

    def summary(self) -> dict:
        ms = 1000 / self.rate
        drift = self.drift_ppm()
        band, u_sum, u_time, integral, _, fill, _ = self._books()
        r = self.resampler
        return {
            "mode": self.mode, "source": self.kind, "engaged": self.engaged,
            "engaged_at_s": None if self.engaged_at is None else round(self.engaged_at, 3),
            "drift_ppm": None if drift is None else round(drift, 1),
            "correction_ppm": round(u_sum / u_time * 1e6, 1) if u_time else None,
            "loop_ppm": round(integral * 1e6, 1), "settled_s": round(u_time, 2),
            "max_ppm": self.params.max_ppm,
            "target_ms": round(self.loop.target * ms, 1), "loop_s": self.params.loop_s,
            "fill_ms": None if fill is None else round(fill * ms, 1),
            "fill_band_ms": None if band is None else [round(b * ms, 1) for b in band],
            "skipped_frames": self.skipped, "source_frames": self.taken,
            "resampled_frames": None if r is None else r.frames_out,
        }
