"""A recording matched to a consumer clocked elsewhere (a pipe into a sound card's player): the
mirror of match.py, with its loop, resampler and books.

The board's audio arrives at the board's I2S clock (its frames, counted as they come); a consumer
such as `pacat` reads the pipe at its sound card's clock once its own buffer is full. What sits
between them, the host's backlog plus what is in the pipe (audio.pipesink.PipeWriter.queued),
grows or shrinks at the clocks' difference. The loop turns its distance from a target into the
ratio the recording is resampled by (output frames per board frame), so the backlog holds.

A consumer that is waiting for the next bytes (nothing queued at all: it reads whatever comes at
once, as a program writing a file does) says nothing of its clock: unmatched, such a sample is
held; --live takes it as a backlog run out (the board slower than the reader), and so builds the
backlog first: the target in silence goes ahead of the first audio
(what the consumer's own buffer takes of it, the rest stays queued), as play waits for its
reserve before the first audio; and what the board records before the consumer has begun to
read (a player connecting to its sound server) is skipped, as play skips what its source had
piled up, so that it does not stay in the latency for ever.

Without --live (a pipe or FIFO, no flag: "auto") the recording goes out bit-exact, as it comes,
and the backlog is only measured: the host cannot tell a reader on a clock of its own from one
that writes a file and stalled for a moment (a growing backlog looks the same for a while), and
the second wants every sample as it was recorded."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from i2scli.live.clockmatch import LiveParams
from i2scli.live.match import LATCH_MIN_S, LATCH_S, SLOPE_FROM_S, LiveMatch

START_WAIT_S = 10.0  # --live: how long a reader that does not read yet is waited for


class SinkMatch(LiveMatch):
    NOUN = "backlog"
    SIGN = -1  # the ratio that holds the backlog is the consumer's clock over the board's

    def __init__(self, rate: int, channels: int, bits: int, queued: Callable[[], int], mode: str, kind: str,
                 params: LiveParams | None = None, clock: Callable[[], float] = time.monotonic):
        """`queued()`: frames on their way to the consumer (the host's backlog and the pipe's)."""
        super().__init__(rate, channels, lambda: (0, 0, None), mode, kind, params, clock)
        self.queued = queued
        self.scale = float(1 << (bits - 1))
        self.padded = 0  # frames of silence ahead of the first audio (--live)
        self.waited: float | None = None  # --live: when the silence went out, and the reader was waited for
        self.was: float | None = None  # the backlog then: a reader that reads takes from it between blocks
        self.measured = 0  # samples of the backlog that said something of the reader's clock

    def describe(self) -> str:
        """For the settings line."""
        if self.mode != "live":
            return f"{self.kind}, clocks not matched (" + ("--no-live)" if self.mode == "off" else
                                                          "bit-exact; --live matches them)")
        return (f"{self.kind}, live: clocks matched (backlog {self.params.target_s * 1000:.0f} ms, "
                f"within ±{self.params.max_ppm:g} ppm)")

    def convert(self, samples: np.ndarray) -> np.ndarray:
        """Integer audio (n, channels) at the board's clock into the consumer's: as it is until the
        clocks need matching, resampled after."""
        n = len(samples)
        now = self.clock()
        fill = float(self.queued())  # sampled before this block goes in: the consumer's side of it
        top = 0
        if self.mode == "live" and self.t0 is None:
            if self.waited is None:
                if not n:
                    return samples
                # the latency is built before the first audio: the target in silence goes first
                self.waited, self.padded = now, int(self.loop.target)
                self.skipped += n
                return np.zeros((self.padded, samples.shape[1]), samples.dtype)
            reading = fill <= 0 or (self.was is not None and fill < self.was)
            if not reading and now - self.waited < START_WAIT_S:
                # the reader has not begun to read steadily (pacat takes 4 kB, then connects to its
                # server): what the board records meanwhile would be latency held for ever: skipped
                self.was = fill
                self.skipped += n
                return samples[:0]
            # what the reader took of the silence while it was waited for is made up: the backlog
            # starts at its target
            top = max(0, int(self.loop.target - fill))
            self.padded += top
            fill += top
            self.t0 = now
            self.loop.restart(fill, now)
            self.latch_at = now + LATCH_S
        if self.t0 is None:
            if not n:
                return samples
            self.t0 = now
        self.taken += n
        # the consumer waits for us: unmatched, its clock is not in the sample; --live takes it as the
        # board running slower than the reader, the backlog gone (as play takes a full queue as drift)
        hold = not n or (fill <= 0 and self.mode != "live")
        if self.latch_at is not None and now >= self.latch_at and not hold:
            # once the consumer's buffer has taken its share: the backlog is held where it settled
            self.latch_at = None
            self.loop.target = min(max(self.loop.fill, LATCH_MIN_S * self.rate), 2 * self.loop.target)
        if not self.engaged:
            self.loop.update(fill, now, hold=hold)
            self.loop.u = self.loop.integral = 0.0
            settled = now - self.t0 >= SLOPE_FROM_S
            if settled and not hold and not self.watching:
                self.watching = True
                self.loop.restart(fill, now)
            if settled and not hold:
                self.slope.add(now - self.t0, fill)
        else:
            self.loop.update(fill, now, hold=hold, steer=self.latch_at is None)
        self.measured += not hold
        self._account(now, fill, hold)
        if not self.engaged:  # only --live resamples, from the first audio on
            return samples
        out = self._ints(self.resample(samples / self.scale), samples.dtype)
        return np.concatenate([np.zeros((top, samples.shape[1]), samples.dtype), out]) if top else out

    def _ints(self, y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        return np.clip(np.round(y * self.scale), -self.scale, self.scale - 1).astype(dtype)

    def finish(self, dtype: np.dtype) -> np.ndarray | None:
        """The resampler's last output (what it held back for its kernel), at the end."""
        y = self.flush()
        return None if y is None or not len(y) else self._ints(y, dtype)

    def drift_ppm(self) -> float | None:
        """None while the reader has only ever waited for the next bytes: nothing measured."""
        return super().drift_ppm() if self.measured else None

    def summary(self) -> dict:
        return {**super().summary(), "padded_frames": self.padded}
