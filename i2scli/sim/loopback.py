"""A wire from one I2S bus's TX to another bus's RX, through a model of the analog path
(`i2s sim --loopback "0>1,delay=1ms,gain=-3,noise=-80"`). See docs/sim.md, *Loopback*.

The RX bus reads, at its own sampling instants on the board's clock, what the TX bus drove on
SD `delay` earlier: RX frame j of a session started at t0_rx reads TX frame

    k = floor((t0_rx - t0_tx) * rate / 10**6) + j - D,    D = the delay in frames

of the TX session started at t0_tx (silence where no TX session was clocking), transformed by
swap, the THD polynomial, gain, invert, hum and noise. Samples stay integers (bit-exact) while
the path is clean (no gain, noise, thd or hum); otherwise the path is float math, rounded and
clipped to the slot width. A drop (once, or every `drop_every`) is made by the board's RX
itself (frames never reach its ring, as in an RX DMA overflow): see runtime/_simloss.py.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

THD_REF_DBFS = -6.0  # the THD option is the THD of a sine at this level
MAX_DELAY_S = 10
NOISE_BLOCK = 4096  # noise frames per seeded block (noise depends on the frame, not on chunking)

_DELAY = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|µs|ms|s|smp|samples?)?\s*$")
_DELAY_SCALE = {"us": Fraction(1, 10**6), "µs": Fraction(1, 10**6), "ms": Fraction(1, 1000),
                "s": Fraction(1), None: Fraction(1)}
USAGE = ("TXID>RXID[,delay=DUR][,gain=DB][,noise=DBFS][,thd=DB][,hum=FREQ:DBFS]"
         "[,drop=FRAME:N[,drop_every=DUR]][,swap][,invert][,seed=N]")


def _float(key: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"loopback {key}={text!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"loopback {key}={text!r} must be finite")
    return v


def thd_coefficient(thd_db: float, ref_dbfs: float = THD_REF_DBFS) -> float:
    """k of y = u - k·u³ such that a sine of peak A = 10^(ref/20) comes out with THD r = 10^(thd/20):
    y = (A - ¾kA³)·sin θ + ¼kA³·sin 3θ, so r = ¼kA² / (1 - ¾kA²) and k = 4r / (A²(1 + 3r))."""
    a2 = 10 ** (ref_dbfs / 10)
    r = 10 ** (thd_db / 20)
    return 4 * r / (a2 * (1 + 3 * r))


@dataclass(frozen=True)
class Loopback:
    spec: str
    tx: int
    rx: int
    delay: Fraction = Fraction(0)  # seconds, exact (when delay_unit is time)
    delay_samples: int | None = None  # the delay given in samples (smp)
    gain_db: float = 0.0
    noise_dbfs: float | None = None
    thd_db: float | None = None
    hum_hz: float | None = None
    hum_dbfs: float | None = None
    drop_frame: int | None = None
    drop_frames: int = 0
    drop_every: Fraction | None = None  # seconds between the starts of two losses (drop_every=)
    drop_every_samples: int | None = None  # the same given in frames (smp)
    swap: bool = False
    invert: bool = False
    seed: int = 0

    # -- the parameters ------------------------------------------------------------------
    @property
    def exact(self) -> bool:
        """Integer path: RX = TX delayed (swapped, inverted), bit for bit."""
        return self.gain_db == 0 and self.noise_dbfs is None and self.thd_db is None \
            and self.hum_hz is None

    @property
    def thd_k(self) -> float:
        return thd_coefficient(self.thd_db) if self.thd_db is not None else 0.0

    def delay_frames(self, rate: int) -> int:
        """The delay in frames at `rate`: as given in samples, or the nearest whole frame to
        delay·rate (halves round up): 1ms is 48 frames at 48 kHz, 44 at 44.1 kHz."""
        if self.delay_samples is not None:
            return self.delay_samples
        return math.floor(self.delay * rate + Fraction(1, 2))

    def drop_period(self, rate: int) -> int | None:
        """Frames from the start of one loss to the start of the next (drop_every=), rounded as
        the delay, at least drop_frames + 1; None: one loss only."""
        if self.drop_every_samples is not None:
            p = self.drop_every_samples
        elif self.drop_every is not None:
            p = math.floor(self.drop_every * rate + Fraction(1, 2))
        else:
            return None
        return max(p, self.drop_frames + 1)

    def check_profile(self, profile) -> None:
        """ValueError unless both buses exist on the board (and are two)."""
        rules = profile.i2s
        if rules is None:
            raise ValueError(f"loopback {self.spec!r}: board profile {profile.name!r} has no I2S")
        ids = tuple(rules.ids)
        for role, bus in (("TX", self.tx), ("RX", self.rx)):
            if bus not in ids:
                have = ", ".join(map(str, ids))
                raise ValueError(f"loopback {self.spec!r}: board profile {profile.name!r} has no "
                                 f"I2S({bus}) for {role} (its buses: {have}; a loopback needs two)")

    def event(self) -> dict:
        """The parameters, for the events file."""
        return {
            "ev": "loopback", "spec": self.spec, "tx": self.tx, "rx": self.rx,
            "delay_s": float(self.delay) if self.delay_samples is None else None,
            "delay_samples": self.delay_samples, "gain_db": self.gain_db,
            "noise_dbfs": self.noise_dbfs, "thd_db": self.thd_db,
            "thd_k": self.thd_k if self.thd_db is not None else None,
            "hum_hz": self.hum_hz, "hum_dbfs": self.hum_dbfs,
            "drop_frame": self.drop_frame, "drop_frames": self.drop_frames,
            "drop_every_s": None if self.drop_every is None else float(self.drop_every),
            "drop_every_samples": self.drop_every_samples,
            "swap": self.swap, "invert": self.invert, "seed": self.seed, "exact": self.exact,
        }

    def board_config(self) -> dict:
        """What the board's machine.I2S needs: the RX bus and its drop, [FRAME, N, EVERY] with
        EVERY None, ["smp", frames] or ["s", numerator, denominator] (the rate is the session's)."""
        if self.drop_frame is None:
            return {"rx": self.rx, "drop": None}
        every = (["smp", self.drop_every_samples] if self.drop_every_samples is not None else
                 ["s", self.drop_every.numerator, self.drop_every.denominator] if self.drop_every is not None
                 else None)
        return {"rx": self.rx, "drop": [self.drop_frame, self.drop_frames, every]}

    # -- the analog path -------------------------------------------------------------------
    def transform(self, x: np.ndarray, bits: int, pos: int, times_us: np.ndarray) -> np.ndarray:
        """TX wire frames x (int, shape (n, 2)) as RX reads them, int64 (n, 2).

        pos: the RX stream position of x[0] (seeds the noise); times_us: each frame's RX
        sampling instant on the board's clock (phase of the hum)."""
        x = x.astype(np.int64)
        if self.swap:
            x = x[:, ::-1]
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if self.exact:
            return np.clip(-x, lo, hi) if self.invert else np.ascontiguousarray(x)
        fs = float(hi)  # full scale: the peak of a 0 dBFS sine (as the sine source)
        u = x / fs
        if self.thd_db is not None:
            u = u - self.thd_k * u ** 3
        if self.gain_db:
            u = u * 10 ** (self.gain_db / 20)
        if self.invert:
            u = -u
        if self.hum_hz is not None:
            t = np.asarray(times_us, dtype=np.float64) / 1e6
            u = u + (10 ** (self.hum_dbfs / 20) * np.sin(2 * math.pi * self.hum_hz * t))[:, None]
        if self.noise_dbfs is not None:
            u = u + self.noise(pos, len(x)) * (10 ** (self.noise_dbfs / 20) / math.sqrt(2))
        return np.clip(np.round(u * fs), lo, hi).astype(np.int64)

    def noise(self, pos: int, n: int) -> np.ndarray:
        """Unit-variance white Gaussian noise for RX stream frames pos..pos+n-1, shape (n, 2):
        a function of the frame number and the seed only."""
        out = np.empty((n, 2))
        done = 0
        while done < n:
            b, off = divmod(pos + done, NOISE_BLOCK)
            block = _noise_block(self.seed, b)
            k = min(n - done, NOISE_BLOCK - off)
            out[done:done + k] = block[off:off + k]
            done += k
        return out


@functools.lru_cache(maxsize=4)
def _noise_block(seed: int, block: int) -> np.ndarray:
    """Block `block` of the noise drawn from `seed` (reads of a few hundred frames share a block)."""
    a = np.random.default_rng([seed, block]).standard_normal((NOISE_BLOCK, 2))
    a.setflags(write=False)
    return a


def parse_loopback(spec: str | None) -> Loopback | None:
    """`TXID>RXID[,option...]` (see USAGE); ValueError with a one-line message."""
    if spec is None or not str(spec).strip():
        return None
    text = str(spec).strip()
    head, *opts = [p.strip() for p in text.split(",")]
    m = re.fullmatch(r"(\d+)\s*>\s*(\d+)", head)
    if not m:
        raise ValueError(f"invalid loopback {text!r}: expected {USAGE} (e.g. 0>1,delay=1ms,gain=-3)")
    tx, rx = int(m.group(1)), int(m.group(2))
    if tx == rx:
        raise ValueError(f"invalid loopback {text!r}: TX and RX must be two buses (I2S is one "
                         f"direction per bus)")
    kw: dict = {}
    for opt in opts:
        key, eq, value = opt.partition("=")
        key = key.strip().lower()
        value = value.strip()
        if key in kw or (key == "hum" and "hum_hz" in kw) or (key == "drop" and "drop_frame" in kw) \
                or (key == "delay" and ("delay" in kw or "delay_samples" in kw)) \
                or (key == "drop_every" and ("drop_every" in kw or "drop_every_samples" in kw)):
            raise ValueError(f"loopback option {key!r} given twice in {text!r}")
        if key in ("swap", "invert"):
            if eq:
                raise ValueError(f"loopback option {key!r} takes no value (in {text!r})")
            kw[key] = True
        elif not eq or not value:
            raise ValueError(f"loopback option {opt!r} needs a value, or is unknown "
                             f"(in {text!r}; use {USAGE})")
        elif key in ("delay", "drop_every"):
            d = _DELAY.match(value)
            if not d:
                raise ValueError(f"loopback {key}={value!r} is not a duration (e.g. 1ms, 250us, "
                                 f"37smp)")
            unit = d.group(2)
            if unit and unit.startswith(("smp", "sample")):
                if not d.group(1).isdigit():
                    raise ValueError(f"loopback {key}={value!r}: samples must be a whole number")
                kw[f"{key}_samples"] = int(d.group(1))
            else:
                kw[key] = Fraction(d.group(1)) * _DELAY_SCALE[unit]
                if kw[key] > MAX_DELAY_S:
                    raise ValueError(f"loopback {key}={value!r} is longer than {MAX_DELAY_S} s")
            if key == "drop_every" and not kw.get("drop_every_samples", kw.get("drop_every")):
                raise ValueError(f"loopback drop_every={value!r} must be longer than 0")
        elif key == "gain":
            kw["gain_db"] = _float(key, value)
        elif key == "noise":
            kw["noise_dbfs"] = _float(key, value)
        elif key == "thd":
            kw["thd_db"] = _float(key, value)
            if kw["thd_db"] >= 0:
                raise ValueError(f"loopback thd={value!r} must be below 0 dB (e.g. thd=-60)")
        elif key == "hum":
            f, colon, level = value.partition(":")
            if not colon:
                raise ValueError(f"loopback hum={value!r}: use hum=FREQ:DBFS (e.g. hum=50:-70)")
            kw["hum_hz"], kw["hum_dbfs"] = _float("hum", f), _float("hum", level)
            if kw["hum_hz"] <= 0:
                raise ValueError(f"loopback hum={value!r}: the frequency must be positive")
        elif key == "drop":
            d = re.fullmatch(r"(\d+):(\d+)", value)
            if not d or int(d.group(2)) < 1:
                raise ValueError(f"loopback drop={value!r}: use drop=FRAME:N, N >= 1 frames lost at "
                                 f"RX frame FRAME (e.g. drop=1000:64)")
            kw["drop_frame"], kw["drop_frames"] = int(d.group(1)), int(d.group(2))
        elif key == "seed":
            if not value.isdigit():
                raise ValueError(f"loopback seed={value!r} must be a whole number >= 0")
            kw["seed"] = int(value)
        else:
            raise ValueError(f"unknown loopback option {key!r} in {text!r} (use {USAGE})")
    if ("drop_every" in kw or "drop_every_samples" in kw) and "drop_frame" not in kw:
        raise ValueError(f"loopback drop_every needs drop=FRAME:N, the first loss (in {text!r})")
    if kw.get("drop_every_samples") is not None and kw["drop_every_samples"] <= kw["drop_frames"]:
        raise ValueError(f"loopback drop_every={kw['drop_every_samples']}smp must be longer than the "
                         f"{kw['drop_frames']} frames each drop loses (in {text!r})")
    if kw.get("delay_samples", 0) > MAX_DELAY_S * 384000:
        raise ValueError(f"loopback delay in {text!r} is too long")
    return Loopback(text, tx, rx, **kw)


class TxRun:
    """What one TX session on the loopback's TX bus drove on SD: frame k was on the wire from
    t0 + k·10⁶/rate µs. Frames are kept as stereo slots (a MONO session's sample on both);
    old ones are trimmed once no RX frame can need them any more."""

    def __init__(self, sid: int, t0: int, rate: int, bits: int, channels: int):
        self.sid, self.t0, self.rate, self.bits, self.channels = sid, t0, rate, bits, channels
        self.starts: list[int] = []
        self.chunks: list[np.ndarray | int] = []  # an array, or a count of zero frames
        self.total = 0  # frames known to have been clocked (data and silence)
        self.live = None  # the SessionState while the session runs (its ring clocks next)

    def wire(self, data: bytes) -> np.ndarray:
        dtype = np.dtype("<i2") if self.bits == 16 else np.dtype("<i4")
        a = np.frombuffer(data, dtype).reshape(-1, self.channels)
        return np.repeat(a, 2, axis=1) if self.channels == 1 else a

    def clocked(self, data: bytes, zeros: int) -> None:
        if data:
            a = self.wire(data)
            self.starts.append(self.total)
            self.chunks.append(a)
            self.total += len(a)
        if zeros:
            if self.chunks and isinstance(self.chunks[-1], int):
                self.chunks[-1] += zeros
            else:
                self.starts.append(self.total)
                self.chunks.append(zeros)
            self.total += zeros

    def fill(self, out: np.ndarray, k0: int) -> None:
        """out[i] = frame k0 + i where this run has it: known, or in the ring (those frames
        clock next, whatever board code does later). Other frames are left as they are."""
        n = len(out)
        i = max(0, bisect.bisect_right(self.starts, k0) - 1)
        while i < len(self.chunks) and self.starts[i] < k0 + n:
            start, chunk = self.starts[i], self.chunks[i]
            i += 1
            if isinstance(chunk, int):
                continue
            a, b = max(k0, start), min(k0 + n, start + len(chunk))
            if a < b:
                out[a - k0:b - k0] = chunk[a - start:b - start]
        s = self.live
        if s is not None and s.queued():
            a = max(k0, self.total)
            b = min(k0 + n, self.total + s.queued())
            if a < b:
                out[a - k0:b - k0] = self.wire(s.ahead(a - self.total, b - self.total))

    def trim(self, keep_from: int) -> None:
        """Forget frames before keep_from."""
        i = 0
        while i < len(self.chunks):
            c = self.chunks[i]
            if self.starts[i] + (c if isinstance(c, int) else len(c)) > keep_from:
                break
            i += 1
        if i:
            del self.starts[:i], self.chunks[:i]
