"""Levels of recorded or played audio, in dBFS."""

from __future__ import annotations

import math
import time

import numpy as np

from i2scli.audio.busformat import BusFormat
from i2scli.audio.wire import wire_to_array


def to_dbfs(value: float, full_scale: float) -> float:
    """20·log10(value / full_scale); -inf for 0."""
    return 20 * math.log10(value / full_scale) if value > 0 else -math.inf


def _json_db(value: float) -> float | None:
    """dB rounded for reports; -inf (silence) becomes None."""
    return None if value == -math.inf else round(value, 2)


class Levels:
    """Peak and RMS per channel of wire audio of format `bus`, for meters and reports.

    Feed it wire bytes or integer arrays (frames, channels). Levels are dBFS re 2**(bits-1)
    (a full-scale sine reads 0 dBFS peak, -3.01 dBFS RMS). `clipped` counts samples at full
    scale (either rail). A live meter uses `held_peak_dbfs`: the largest block peak,
    held `hold` seconds, then falling back to the latest block's peak.
    """

    def __init__(self, bus: BusFormat, hold: float = 3.0):
        self.bus = bus
        self.hold = hold
        n = bus.channels
        self.frames = 0
        self.peak = [0] * n
        self.clipped = [0] * n
        self._sumsq = [0.0] * n
        self.block_peak = [0] * n
        self._held = [0] * n
        self._held_at = [-math.inf] * n

    def feed(self, data: bytes | bytearray | memoryview | np.ndarray, now: float | None = None) -> None:
        """Add a block; `now` (seconds, any monotonic clock) drives the peak hold."""
        now = time.monotonic() if now is None else now
        x = wire_to_array(data, self.bus) if not isinstance(data, np.ndarray) else data.reshape(-1, self.bus.channels)
        if len(x) == 0:
            return
        x = x.astype(np.int64)
        hi, lo = self.bus.full_scale - 1, -self.bus.full_scale
        self.frames += len(x)
        block_peak = np.abs(x).max(axis=0).tolist()
        sumsq = np.einsum("ij,ij->j", x.astype(np.float64), x.astype(np.float64)).tolist()
        clipped = np.count_nonzero((x >= hi) | (x <= lo), axis=0).tolist()
        for c in range(self.bus.channels):
            self.peak[c] = max(self.peak[c], block_peak[c])
            self._sumsq[c] += sumsq[c]
            self.clipped[c] += clipped[c]
            if block_peak[c] >= self._held[c] or now - self._held_at[c] >= self.hold:
                self._held[c], self._held_at[c] = block_peak[c], now
        self.block_peak = block_peak

    def peak_dbfs(self) -> list[float]:
        """Peak over everything fed, per channel (-inf for silence)."""
        return [to_dbfs(p, self.bus.full_scale) for p in self.peak]

    def rms_dbfs(self) -> list[float]:
        """RMS over everything fed, per channel (-inf for silence or nothing fed)."""
        if not self.frames:
            return [-math.inf] * self.bus.channels
        return [to_dbfs(math.sqrt(s / self.frames), self.bus.full_scale) for s in self._sumsq]

    def held_peak_dbfs(self, now: float | None = None) -> list[float]:
        """The live meter's peak per channel: held `hold` seconds, then the latest block's."""
        now = time.monotonic() if now is None else now
        fs = self.bus.full_scale
        return [to_dbfs(h if now - t < self.hold else b, fs)
                for h, t, b in zip(self._held, self._held_at, self.block_peak)]

    def summary(self) -> dict:
        """JSON-able totals: format, frames, seconds, and per channel peak/RMS dBFS (None = silence), clipped."""
        return {
            "rate": self.bus.rate,
            "bits": self.bus.bits,
            "frames": self.frames,
            "seconds": round(self.frames / self.bus.rate, 3),
            "clipped": sum(self.clipped),
            "channels": [
                {"peak_dbfs": _json_db(p), "rms_dbfs": _json_db(r), "clipped": c}
                for p, r, c in zip(self.peak_dbfs(), self.rms_dbfs(), self.clipped)
            ],
        }
