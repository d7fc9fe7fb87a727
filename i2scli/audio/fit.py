"""--fit: make a stream that the link cannot carry, even coded, fit with the least
audible change, and measure what that change cost.

First **near-lossless**: per block (one coded DATA payload) and channel, the
low bits that lie under the block's own noise floor are rounded away, so the lossless wire coder's
wasted-bits shift drops them and the board's decoder restores the rounded samples as they are: the
board needs no new code. Only when that is not enough, a lower standard rate (soxr, HQ) or one
channel (the mean of the two), with near-lossless on top where that is still needed.

The rule, per block and channel (docs/protocol.md, "Near-lossless"):

* The **noise floor** is the lowest spectral level around the block: Hann-windowed power spectra
  of a long window (1024 samples at 44.1 kHz, scaled with the rate, hop a quarter of it) and a
  short one (1/16 of that, hop half of it), whose centres lie within half a hop of the block;
  each spectrum is averaged over neighbouring bins (16 bins long, 5 short), in power, and its
  minimum taken between 20 Hz and 16 kHz (at most 0.8 of Nyquist: above it lies the
  anti-alias roll-off of real recordings, not a floor that masks anything). Each window's
  minimum is calibrated so that white noise of variance s² reads s² (the median over noise
  windows), in units of sample variance; the block's floor is the smallest of its windows'.
* The **added noise** is what rounding to a multiple of 2**b does to the block: its mean
  square error, measured on the block itself. `b` is the largest count (at most bits - 2)
  whose added noise stays at least `MARGIN_DB` under the floor.
* Rounding is to the nearest multiple of 2**b, ties to even, clipped to the largest multiple
  that fits: never truncation, which would add a DC offset of half a step.

The SNR reported is the sent audio against the stream without --fit (the file at the bus
format it would have had), over the whole stream, in constant memory: a lower rate is brought
back with a second soxr resampler (delay-compensated, so sample k meets sample k), one channel
is compared with both.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from i2scli import protocol
from i2scli.audio import wirecode
from i2scli.audio.busformat import BusFormat

#: the added noise stays at least this far under the block's noise floor (dB)
MARGIN_DB = 1.0
#: what --fit may resample to, best first
STANDARD_RATES = (48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
LOW_HZ = 20.0
HIGH_HZ = 16000.0
HIGH_SHARE = 0.8  # of Nyquist
LONG_AT_44K = 1024
SMOOTH_LONG = 16
SMOOTH_SHORT = 5
_CAL_WINDOWS = 2048
_CAL_SEED = 17


def analysis_lengths(rate: int) -> tuple[int, int]:
    """The long and the short analysis window (samples) at `rate`: 1024 and 64 at 44.1 kHz."""
    long = 1 << max(6, round(math.log2(LONG_AT_44K * rate / 44100)))
    return long, max(16, long // 16)


@functools.cache
def _analysis(n: int, rate: int, smooth: int) -> tuple[np.ndarray, int, int, int, float]:
    """Window, band (first bin, end bin), smoothing width and calibration of one window length."""
    w = np.hanning(n + 2)[1:-1]
    f = np.fft.rfftfreq(n, 1 / rate)
    top = min(HIGH_HZ, HIGH_SHARE * rate / 2)
    band = np.flatnonzero((f >= LOW_HZ) & (f <= top))
    lo, hi = (int(band[0]), int(band[-1]) + 1) if band.size else (1, n // 2)
    sm = max(1, min(smooth, hi - lo))
    noise = np.random.default_rng(_CAL_SEED).standard_normal((_CAL_WINDOWS, n))
    cal = float(np.median(_raw_floor(noise, w, lo, hi, sm)))
    return w, lo, hi, sm, cal


def _raw_floor(windows: np.ndarray, w: np.ndarray, lo: int, hi: int, sm: int) -> np.ndarray:
    """Per window (last axis): the minimum over the band of the bin-averaged power spectrum."""
    p = np.abs(np.fft.rfft(windows * w, axis=-1)[..., lo:hi]) ** 2 / float((w * w).sum())
    c = np.cumsum(p, axis=-1)
    c = np.concatenate([np.zeros(c.shape[:-1] + (1,)), c], axis=-1)
    return ((c[..., sm:] - c[..., :-sm]) / sm).min(axis=-1)


def window_floor(windows: np.ndarray, rate: int, smooth: int) -> np.ndarray:
    """The calibrated floor (sample-variance units) of each window (last axis, a length
    analysis_lengths gives): white noise of variance s² reads s² in the median."""
    w, lo, hi, sm, cal = _analysis(windows.shape[-1], rate, smooth)
    return _raw_floor(windows, w, lo, hi, sm) / cal


def quantise(x: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """x (int64) rounded to the nearest multiple of 2**b (b broadcast against x), ties to even,
    clipped to the largest multiple below full scale. b = 0 leaves x as it is."""
    b = np.asarray(b, np.int64)
    step = np.int64(1) << b
    q = x >> b
    r = x & (step - 1)
    half = step >> 1
    up = (b > 0) & ((r > half) | ((r == half) & ((q & 1) == 1)))
    y = (q + up) << b
    top = ((np.int64(1) << (bits - 1)) - 1) >> b << b
    return np.minimum(y, top)


def bits_to_remove(blocks: np.ndarray, floors: np.ndarray, bits: int, margin_db: float = MARGIN_DB):
    """blocks (n, frames, channels) int64, floors (n, channels): the quantised blocks and the
    bits removed per block and channel, each the most whose added noise (measured) stays
    margin_db under its floor."""
    limit = floors * 10 ** (-margin_db / 10)
    with np.errstate(divide="ignore", invalid="ignore"):  # uniform rounding error adds step²/12
        b = np.floor(np.log2(np.sqrt(12 * limit))) + 1  # one more than that says, then down to what holds
    b = np.where(limit > 0, np.clip(np.nan_to_num(b, nan=0, neginf=0, posinf=0), 0, bits - 2), 0).astype(np.int64)
    while True:
        y = quantise(blocks, b[:, None, :], bits)
        err = y - blocks
        mse = np.einsum("ntc,ntc->nc", err.astype(np.float64), err.astype(np.float64)) / max(blocks.shape[1], 1)
        bad = (mse > limit) & (b > 0)
        if not bad.any():
            return y, b
        b = np.where(bad, b - 1, b)


class NearLossless:
    """The near-lossless quantiser on a stream, block by block (`block` frames, the DATA payload):
    feed integer frames, get back the quantised ones a little later (it looks half a long window
    ahead), flush at the end. Memory: about two long windows, whatever the stream's length."""

    def __init__(self, bus: BusFormat, block: int, margin_db: float = MARGIN_DB, keep: bool = False):
        if block <= 0:
            raise ValueError("a near-lossless block holds at least one frame")
        self.bus, self.block, self.margin_db = bus, block, margin_db
        self.long, self.short = analysis_lengths(bus.rate)
        self.grids = ((self.long, self.long // 4, SMOOTH_LONG), (self.short, self.short // 2, SMOOTH_SHORT))
        self.ctx = self.long // 2 + self.long // 8 + 1  # the last window's reach past a block
        self.buf = np.zeros((0, bus.channels), np.int64)
        self.base = 0  # absolute frame index of buf[0]
        self.total = 0  # frames fed
        self.next = 0  # next block to quantise
        self.blocks = 0  # block-channels quantised
        self.bits_sum = 0
        self.bits_max = 0
        self.history: list | None = [] if keep else None  # (floors, bits removed) per batch, for tests

    def feed(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.int64).reshape(-1, self.bus.channels)
        self.buf = np.concatenate([self.buf, x]) if len(self.buf) else x
        self.total += len(x)
        ready = max(0, (self.total - self.ctx) // self.block)
        return self._run(ready, final=False) if ready > self.next else self._empty()

    def flush(self) -> np.ndarray:
        end = -(-self.total // self.block)
        return self._run(end, final=True) if end > self.next else self._empty()

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.bus.channels), np.int64)

    def _segment(self, a: int, b: int) -> np.ndarray:
        """Frames [a, b) as float, zeros outside what the stream holds."""
        out = np.zeros((b - a, self.bus.channels))
        lo, hi = max(a, self.base), min(b, self.base + len(self.buf))
        if hi > lo:
            out[lo - a:hi - a] = self.buf[lo - self.base:hi - self.base]
        return out

    def floors(self, k0: int, k1: int) -> np.ndarray:
        """The noise floor of blocks k0..k1-1 (n, channels) from the frames held."""
        B, total = self.block, self.total
        ks = np.arange(k0, k1)
        out = None
        for n, h, smooth in self.grids:
            last = (total - 1) // h  # no window centred past the end of the stream
            j_hi = np.minimum(-((-(2 * (ks + 1) * B + h)) // (2 * h)), last + 1)
            j_lo = np.minimum(np.maximum(-((-(2 * ks * B - h)) // (2 * h)), 0), j_hi - 1)
            j0, j1 = int(j_lo.min()), int(j_hi.max())
            # windows stay inside the stream where it is long enough: zeros past its ends would
            # make a click there, whose spectrum is no floor of the audio's
            starts = np.clip(np.arange(j0, j1) * h - n // 2, 0, max(total - n, 0))
            a = int(starts[0])
            seg = self._segment(a, int(starts[-1]) + n)
            win = np.lib.stride_tricks.sliding_window_view(seg, n, axis=0)[starts - a]  # (m, channels, n)
            est = window_floor(win, self.bus.rate, smooth)  # (m, channels)
            width = int((j_hi - j_lo).max())
            idx = (j_lo - j0)[:, None] + np.arange(width)
            valid = idx < (j_hi - j0)[:, None]
            vals = est[np.minimum(idx, len(est) - 1)]  # (blocks, width, channels)
            f = np.where(valid[:, :, None], vals, np.inf).min(axis=1)
            out = f if out is None else np.minimum(out, f)
        return out

    def _run(self, k1: int, final: bool) -> np.ndarray:
        B, k0 = self.block, self.next
        floors = self.floors(k0, k1)
        start, end = k0 * B, min(k1 * B, self.total)
        x = self.buf[start - self.base:end - self.base]
        full = (end - start) // B
        parts, bs = [], []
        if full:
            y, b = bits_to_remove(x[:full * B].reshape(full, B, -1), floors[:full], self.bus.bits, self.margin_db)
            parts.append(y.reshape(-1, self.bus.channels))
            bs.append(b)
        if end - start > full * B:  # the stream's last, shorter block
            y, b = bits_to_remove(x[full * B:][None], floors[full:full + 1], self.bus.bits, self.margin_db)
            parts.append(y[0])
            bs.append(b)
        b = np.concatenate(bs)
        if self.history is not None:
            self.history.append((floors, b))
        self.blocks += b.size
        self.bits_sum += int(b.sum())
        self.bits_max = max(self.bits_max, int(b.max()))
        self.next = k1
        keep = max(0, k1 * B - self.ctx) - self.base
        if keep > 0:
            self.buf = self.buf[keep:]
            self.base += keep
        return np.concatenate(parts)

    def summary(self) -> dict:
        return {"mean": round(self.bits_sum / self.blocks, 3) if self.blocks else 0.0, "max": self.bits_max}


class SnrMeter:
    """Signal-to-noise ratio of the sent stream (format `dst`) against the stream without --fit
    (`src`): the reference frames wait in a queue for their counterparts, so memory is bounded
    by the delays of the pipeline, not the stream's length."""

    def __init__(self, src: BusFormat, dst: BusFormat):
        self.src, self.dst = src, dst
        self.up = None
        if dst.rate != src.rate:
            import soxr

            self.up = soxr.ResampleStream(dst.rate, src.rate, dst.channels, dtype="float64", quality="HQ")
        self.queue: list[np.ndarray] = []
        self.signal = 0.0
        self.noise = 0.0
        self.frames = 0

    def reference(self, r: np.ndarray) -> None:
        if len(r):
            self.queue.append(np.asarray(r, np.float64))

    def sent(self, s: np.ndarray) -> None:
        s = np.asarray(s, np.float64)
        if self.up is not None:
            s = self.up.resample_chunk(np.ascontiguousarray(s))
        self._compare(s)

    def finish(self) -> None:
        if self.up is not None:
            self._compare(self.up.resample_chunk(np.zeros((0, self.dst.channels)), last=True))
            self.up = None

    def _compare(self, s: np.ndarray) -> None:
        if s.shape[1] < self.src.channels:  # one channel against both
            s = np.repeat(s, self.src.channels, axis=1)
        while len(s) and self.queue:
            r = self.queue[0]
            n = min(len(r), len(s))
            e = s[:n] - r[:n]
            self.signal += float(np.einsum("ij,ij->", r[:n], r[:n]))
            self.noise += float(np.einsum("ij,ij->", e, e))
            self.frames += n
            s = s[n:]
            if n == len(r):
                self.queue.pop(0)
            else:
                self.queue[0] = r[n:]

    @property
    def snr_db(self) -> float | None:
        """None: bit-exact (or nothing compared); -inf never (silence sent as silence is exact)."""
        if self.noise <= 0 or not self.frames:
            return None
        if self.signal <= 0:
            return -math.inf
        return 10 * math.log10(self.signal / self.noise)


def method_name(src: BusFormat, dst: BusFormat, near_lossless: bool) -> str:
    parts = (["resample"] if dst.rate != src.rate else []) + (["mono"] if dst.channels < src.channels else [])
    parts += ["near-lossless"] if near_lossless else []
    return "+".join(parts) or "lossless"


class Fitter:
    """The stream without --fit (bus format `src`, wire bytes) turned into what --fit sends
    (`dst`): one channel (the mean of two, or with mix=False the left one, as -c 1 plays a stereo
    file), a lower rate (soxr HQ, rounded half to even, clipped: counted), 16 bits of a 32-bit
    stream (the top 16, as -b 16 plays it), then near-lossless in blocks of `block` frames (None:
    not), measuring the SNR as it goes."""

    def __init__(self, src: BusFormat, dst: BusFormat, block: int | None = None, *, mix: bool = True,
                 margin_db: float = MARGIN_DB):
        if dst.channels > src.channels or dst.bits > src.bits:
            raise ValueError(f"--fit cannot turn {src.describe()} into {dst.describe()}")
        self.src, self.dst, self.mix = src, dst, mix
        self.resampler = None
        if dst.rate != src.rate:
            import soxr

            self.resampler = soxr.ResampleStream(src.rate, dst.rate, dst.channels, dtype="float64", quality="HQ")
        self.near = NearLossless(dst, block, margin_db) if block else None
        self.meter = SnrMeter(src, dst)
        self.clipped = 0
        self.method = method_name(src, dst, bool(block))

    def feed(self, data: bytes) -> bytes:
        r = np.frombuffer(data, self.src.dtype).reshape(-1, self.src.channels)
        self.meter.reference(r)
        return self._out(self._convert(r))

    def finish(self) -> bytes:
        tail = np.zeros((0, self.dst.channels), np.int64)
        if self.resampler is not None:
            tail = self._quantise(self.resampler.resample_chunk(np.zeros((0, self.dst.channels)), last=True))
            self.resampler = None
        out = self._out(tail, final=True)
        self.meter.finish()
        return out

    def _convert(self, r: np.ndarray) -> np.ndarray:
        x = r.astype(np.int64)
        if self.dst.bits < self.src.bits:
            x = x >> (self.src.bits - self.dst.bits)
        if self.dst.channels < self.src.channels:
            if not self.mix:
                x = x[:, :1]
            elif self.resampler is None:
                return np.rint(x.mean(axis=1, keepdims=True)).astype(np.int64)
            else:
                return self._resample(x.mean(axis=1, keepdims=True))
        return self._resample(x) if self.resampler is not None else x

    def _resample(self, x: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.zeros((0, self.dst.channels), np.int64)
        return self._quantise(self.resampler.resample_chunk(np.ascontiguousarray(x, np.float64)))

    def _quantise(self, y: np.ndarray) -> np.ndarray:
        y = np.rint(y)
        hi, lo = self.dst.full_scale - 1, -self.dst.full_scale
        over = (y > hi) | (y < lo)
        self.clipped += int(np.count_nonzero(over))
        return np.clip(y, lo, hi).astype(np.int64)

    def _out(self, x: np.ndarray, final: bool = False) -> bytes:
        if self.near is not None:
            x = self.near.feed(x) if len(x) else self.near._empty()
            if final:
                x = np.concatenate([x, self.near.flush()])
        if self.dst.bits < self.src.bits:  # compared at the source's scale
            self.meter.sent(x.astype(np.int64) << (self.src.bits - self.dst.bits))
        else:
            self.meter.sent(x)
        return np.ascontiguousarray(x, self.dst.dtype).tobytes()

    def summary(self) -> dict:
        """What --json reports as `fit` (the SNR over everything fed so far)."""
        snr = self.meter.snr_db
        return {"method": self.method,
                "bits_removed": self.near.summary() if self.near else {"mean": 0.0, "max": 0},
                "rate": self.dst.rate, "channels": self.dst.channels,
                "snr_db": None if snr is None else round(snr, 2)}


@dataclass
class Estimate:
    """One way of sending a stream, tried on its first seconds."""

    dst: BusFormat
    near_lossless: bool
    coded: bool
    payload: int  # audio bytes per DATA frame
    need: float  # bytes/s on the wire
    ratio: float | None  # audio / coded bytes (None: not coded)
    snr_db: float | None  # against the stream without --fit (None: bit-exact)
    bits_removed: dict
    method: str
    mix: bool = True

    def describe(self, src: BusFormat) -> str:
        """E.g. 'near-lossless, about 52 dB SNR' or '22050 Hz mono (resample+mono), about 31 dB SNR'."""
        what = self.method if self.dst == src else f"{self.dst.describe()} ({self.method})"
        return what + (f", about {self.snr_db:.0f} dB SNR" if self.snr_db is not None else ", bit-exact")


def coded_need(frames: list[bytes], audio_frames: int, rate: int, crc: bool = True) -> float:
    """Bytes/s on the wire of these coded DATA payloads, `audio_frames` audio frames in all:
    each frame's header, its payload, and a CRC on raw escapes (coded payloads carry none)."""
    wire = sum(len(c) + protocol.HEADER_SIZE + (protocol.CRC_SIZE if crc and c[:1] == b"\x00" else 0)
               for c in frames)
    return wire * rate / max(audio_frames, 1)


def estimate(src: BusFormat, dst: BusFormat, head: bytes, payload: int, *, near_lossless: bool, coded: bool,
             mix: bool = True, crc: bool = True) -> Estimate:
    """How `head` (the stream's first seconds at `src`) goes as `dst`: its wire rate, ratio, SNR."""
    fitter = Fitter(src, dst, payload // dst.frame_bytes if near_lossless else None, mix=mix)
    sent = fitter.feed(head) + fitter.finish()
    frames = len(sent) // dst.frame_bytes
    ratio = None
    if coded and frames:
        out = wirecode.encode_many(sent, payload, dst.bits, dst.channels)
        need = coded_need(out, frames, dst.rate, crc)
        ratio = len(sent) / max(sum(len(c) for c in out), 1)
    else:
        need = protocol.stream_rate(dst.rate, dst.bits, dst.channels, payload, crc)
    s = fitter.summary()
    return Estimate(dst, near_lossless, coded, payload, need, ratio, fitter.meter.snr_db, s["bits_removed"],
                    fitter.method, mix)
