"""A streaming fractional resampler whose ratio may change between blocks: windowed-sinc
interpolation at any fractional position, with the input's tail and the position carried from
one block to the next, so a stream cut into blocks comes out as one (no step, no sample lost or
repeated at a block's edge). Made for ratios within a few percent of 1 (clock matching), where
a fixed low-pass just below Nyquist serves both directions.

The kernel is tabulated at PHASES fractional positions and linearly interpolated between them:
with 32 taps and a Kaiser window, a sine comes out about 100 dB above the error
(tests/unit/test_live_match.py measures it)."""

from __future__ import annotations

import numpy as np

TAPS = 32  # input samples each output sample is made from (half before, half after it)
PHASES = 512  # tabulated fractional positions per input sample
CUTOFF = 0.45  # of the input rate: the band kept (20 kHz at 44.1 kHz), the rest stopped
KAISER_BETA = 10.0


def _table() -> np.ndarray:
    """(PHASES + 1, TAPS): the kernel's taps for fraction p/PHASES; row PHASES = row 0 shifted."""
    half = TAPS // 2
    frac = np.arange(PHASES + 1)[:, None] / PHASES
    t = np.arange(-half + 1, half + 1)[None, :] - frac  # tap k sits at input (i - half + 1 + k)
    w = np.kaiser(2 * half * PHASES + 1, KAISER_BETA)
    window = np.interp(t, np.linspace(-half, half, len(w)), w)
    h = 2 * CUTOFF * np.sinc(2 * CUTOFF * t) * window
    return h / h.sum(axis=1, keepdims=True)  # unity gain at DC for every phase


_TABLE = _table()
_DELTA = np.diff(_TABLE, axis=0)  # for the linear interpolation between phases


class Resampler:
    """`process(x, ratio)`: (n, channels) float in, output frames per input frame = ratio out.

    The position of the next output sample is carried in input samples from the start of the
    kept history; it advances by 1/ratio per output sample. Output lags input by TAPS/2
    samples (the kernel's half width, held until the input after them has come: `flush`)."""

    def __init__(self, channels: int, before: np.ndarray | None = None):
        """`before`: the audio that preceded the first block (played as it was), else silence."""
        self.channels = channels
        self.hist = np.zeros((TAPS, channels))
        if before is not None and len(before):
            b = np.asarray(before, dtype=np.float64).reshape(-1, channels)[-TAPS:]
            self.hist[TAPS - len(b):] = b
        self.pos = float(TAPS)  # the first output is at the first input sample
        self.frames_in = 0
        self.frames_out = 0

    def process(self, x: np.ndarray, ratio: float) -> np.ndarray:
        if ratio <= 0:
            raise ValueError("ratio must be > 0")
        self.frames_in += len(x)
        buf = np.concatenate([self.hist, np.asarray(x, dtype=np.float64).reshape(-1, self.channels)])
        step = 1.0 / ratio
        half = TAPS // 2
        # output k sits at pos + k*step; it needs inputs up to floor(.) + half
        last = len(buf) - half - 1  # the largest integer part with all its taps here
        n = max(0, int(np.ceil((last + 1 - self.pos) / step)))
        while n and self.pos + (n - 1) * step >= last + 1:
            n -= 1
        out = np.empty((n, self.channels))
        if n:
            p = self.pos + step * np.arange(n)
            i = np.floor(p).astype(np.int64)
            f = (p - i) * PHASES
            j = np.minimum(f.astype(np.int64), PHASES - 1)
            kernel = _TABLE[j] + _DELTA[j] * (f - j)[:, None]  # (n, TAPS)
            idx = (i - half + 1)[:, None] + np.arange(TAPS)[None, :]
            for c in range(self.channels):
                out[:, c] = np.einsum("nk,nk->n", kernel, buf[idx, c])
        self.pos += n * step
        # keep what the next outputs still need: from floor(pos) - half + 1 on
        keep_from = max(0, min(int(np.floor(self.pos)) - half + 1, len(buf) - TAPS))
        self.hist = buf[keep_from:]
        self.pos -= keep_from
        self.frames_out += n
        return out

    def flush(self, ratio: float) -> np.ndarray:
        """The output still held back at the end of the stream (its last TAPS/2 inputs)."""
        frames_in = self.frames_in
        out = self.process(np.zeros((TAPS // 2, self.channels)), ratio)
        self.frames_in = frames_in
        keep = max(0, int(round((frames_in) * ratio)) - (self.frames_out - len(out)))
        self.frames_out -= len(out) - min(keep, len(out))
        return out[:keep]
