"""Check a recording of the virtual board's `ramp` RX source as it streams, and say where it broke.

The ramp (i2scli/sim/wire.py) carries slot n = 2·frame + channel, so each frame says which
microphone frame it is. A recording that is what it says it is has one constant *phase*
(microphone frame − recorded frame). Every place where the phase changes is a discontinuity:
a positive jump is frames skipped (lost before they reached the recording: an overrun), a
negative one frames repeated (a block sent twice, a stale buffer). A frame that is no ramp
frame at all (its slots disagree) is counted as garbled.

`RampCheck` is an `audio.Output` look-alike, so `session.record` writes into it; it keeps
nothing but counters and the list of discontinuities, so memory stays flat however long it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from i2scli.sim.wire import RAMP_24BIT_MASK


@dataclass
class Discontinuity:
    frame: int  # first recorded frame after the break
    jump: int  # microphone frames skipped (> 0) or repeated (< 0) there

    def as_dict(self) -> dict:
        return {"frame": self.frame, "jump": self.jump}


class RampCheck:
    """Streaming continuity check of a ramp recording (any bits, 1 or 2 channels)."""

    path = "(ramp check)"
    format = "none"

    def __init__(self, bits: int = 32, channels: int = 2, keep: int = 1000):
        self.bits = bits
        self.channels = channels
        self.subtype = "PCM_32" if bits == 32 else "PCM_16"
        self._dtype = np.dtype("<i4") if bits == 32 else np.dtype("<i2")
        self._fb = self._dtype.itemsize * channels
        # slot values wrap at 2**24 (24 bits in a 32-bit slot) or 2**16: frames at half that
        self._period = (RAMP_24BIT_MASK + 1 if bits == 32 else 1 << 16) // 2
        self._keep = keep
        self.frames = 0
        self.garbled = 0
        self.discontinuities: list[Discontinuity] = []
        self.more = 0  # discontinuities past `keep`, counted only
        self._phase: int | None = None
        self._tail = b""

    # -- audio.Output ------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        data = self._tail + bytes(data)
        usable = len(data) // self._fb * self._fb
        self._tail = data[usable:]
        if not usable:
            return
        x = np.frombuffer(data[:usable], self._dtype).reshape(-1, self.channels).astype(np.int64)
        if self.bits == 32:
            slots = (x >> 8) & RAMP_24BIT_MASK
        else:
            slots = x & 0xFFFF
        left = slots[:, 0]
        ok = (left & 1) == 0
        if self.channels == 2:
            ok &= slots[:, 1] == left + 1
        n = len(x)
        index = self.frames + np.arange(n, dtype=np.int64)
        phase = ((left >> 1) - index) % self._period
        self.garbled += int(n - ok.sum())
        good = np.flatnonzero(ok)
        if len(good):
            p = phase[good]
            prev = np.concatenate(([p[0] if self._phase is None else self._phase], p[:-1]))
            for i in np.flatnonzero(p != prev):
                jump = int((p[i] - prev[i]) % self._period)
                if jump > self._period // 2:
                    jump -= self._period
                self._add(Discontinuity(self.frames + int(good[i]), jump))
            self._phase = int(p[-1])
        self.frames += n

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass

    # -- results -----------------------------------------------------------------------------
    def _add(self, d: Discontinuity) -> None:
        if len(self.discontinuities) < self._keep:
            self.discontinuities.append(d)
        else:
            self.more += 1

    @property
    def skipped(self) -> int:
        """Microphone frames that never reached the recording (sum of forward jumps)."""
        return sum(d.jump for d in self.discontinuities if d.jump > 0)

    @property
    def repeated(self) -> int:
        """Frames the recording holds twice or stale (sum of backward jumps)."""
        return -sum(d.jump for d in self.discontinuities if d.jump < 0)

    @property
    def clean(self) -> bool:
        return not self.discontinuities and not self.more and not self.garbled


def account(check: RampCheck, summary: dict, slack: int) -> list[dict]:
    """Each discontinuity of `check` with the counter that saw it: `agent` when the agent's own
    overrun estimate placed a loss within `slack` frames of it (SUMMARY `overrun_at` keeps the
    first 8 places); `count` when the agent counted more losses than it kept places for, so its
    count and lost frames cover it but not where (one count per spell: a board that stays behind
    loses several times in one spell); `port` when only the port's own count (the virtual board's
    I2S) has it; else None: nothing saw it. `summary` is session.record's result (its `board`
    is the agent's SUMMARY). Only forward jumps (lost frames) can be an overrun's."""
    board = summary.get("board") or {}
    places = list(board.get("overrun_at") or [])
    agent = board.get("overruns") or 0
    port = (board.get("port_xruns") or {}).get("overruns") or 0
    out = []
    for d in check.discontinuities:
        seen = None
        if d.jump > 0:
            if any(abs(d.frame - a) <= slack for a in places):
                seen = "agent"
            elif agent > len(places):
                seen = "count"
            elif port:
                seen = "port"
        out.append({**d.as_dict(), "seen_by": seen})
    return out
