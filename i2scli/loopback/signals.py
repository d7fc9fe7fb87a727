"""What `i2s test` plays: test signals (sine, multitone, log sweep) behind an alignment marker, the
conversions between integer samples and fractions of full scale, and a song-like signal for the
coder's tests. Levels are AES17 dBFS: a sine whose peak reaches full scale is 0 dBFS."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- conversions


def full_scale(bits: int) -> int:
    """Full scale of a `bits`-bit signed sample: ``2**(bits - 1)`` (a 0 dBFS sine's peak)."""
    if bits not in (8, 16, 24, 32):
        raise ValueError(f"bits must be 16 or 32 (or 8/24), not {bits!r}")
    return 1 << (bits - 1)


def to_float(samples: np.ndarray, bits: int) -> np.ndarray:
    """`samples` as float64 fractions of full scale (same shape)."""
    return np.asarray(samples, dtype=np.float64) / full_scale(bits)



def _quantize(x: np.ndarray, bits: int, channels: int) -> np.ndarray:
    """Float fractions of full scale -> integer samples ``(frames, channels)``, rounded and clipped."""
    fs = full_scale(bits)
    if x.ndim == 1:
        x = np.repeat(x[:, None], channels, axis=1)
    q = np.clip(np.rint(x * fs), -fs, fs - 1)
    return q.astype(np.int16 if bits <= 16 else np.int32)


def _as_2d(samples: np.ndarray) -> np.ndarray:
    a = np.asarray(samples)
    return a[:, None] if a.ndim == 1 else a


# --------------------------------------------------------------------------- test signals


def _check_tone(freq: float, rate: int) -> None:
    if not rate > 0:
        raise ValueError(f"the sample rate must be positive, not {rate!r}")
    if not 0 < freq < rate / 2:
        raise ValueError(f"frequency {freq:g} Hz is not between 0 and the Nyquist frequency ({rate / 2:g} Hz)")


def _check_level(dbfs: float) -> float:
    """Peak of a sine at `dbfs` as a fraction of full scale; above 0 dBFS a sine clips."""
    if not -200 <= dbfs <= 0:
        raise ValueError(f"level {dbfs:g} dBFS is outside -200..0 dBFS (a sine above 0 dBFS clips)")
    return 10 ** (dbfs / 20)


def _frames(seconds: float, rate: int) -> int:
    n = round(seconds * rate)
    if n < 1:
        raise ValueError(f"duration {seconds:g} s is too short at {rate} Hz")
    return n


def sine(
    freq: float = 997.0,
    dbfs: float = -6.0,
    seconds: float = 1.0,
    rate: int = 48000,
    bits: int = 32,
    channels: int = 2,
    phase: float = 0.0,
) -> np.ndarray:
    """A sine at `freq` Hz and `dbfs` (AES17: 0 dBFS peaks at full scale), the same on every channel.

    997 Hz (AES17's recommended test frequency) shares no factor with the usual rates, so every
    sample hits a different phase and quantization error does not pile up on a few codes.

    Returns
    -------
    numpy.ndarray
        Integer samples, shape ``(round(seconds * rate), channels)``.
    """
    _check_tone(freq, rate)
    n = np.arange(_frames(seconds, rate))
    return _quantize(_check_level(dbfs) * np.sin(2 * np.pi * freq / rate * n + phase), bits, channels)


def multitone(
    freqs: list[float] | tuple[float, ...],
    dbfs: float = -20.0,
    seconds: float = 1.0,
    rate: int = 48000,
    bits: int = 32,
    channels: int = 2,
) -> np.ndarray:
    """Sum of sines at `freqs`, each at `dbfs`, with Schroeder phases (low crest factor).

    Raises ValueError if the tones add up above full scale: lower `dbfs`.
    """
    if not len(freqs):
        raise ValueError("a multitone needs at least one frequency")
    for f in freqs:
        _check_tone(f, rate)
    k = np.arange(len(freqs))
    phases = -np.pi * k * k / len(freqs)  # Schroeder 1970: spreads the peaks of the tones apart
    n = np.arange(_frames(seconds, rate))
    x = _check_level(dbfs) * np.sin(np.outer(n, 2 * np.pi * np.asarray(freqs) / rate) + phases).sum(axis=1)
    peak = float(np.abs(x).max())
    if peak > 1:
        raise ValueError(f"{len(freqs)} tones at {dbfs:g} dBFS peak at {peak:.2f} of full scale: lower the level")
    return _quantize(x, bits, channels)


def _fades(n: int, fade: int) -> np.ndarray:
    """Half-Hann fade-in and fade-out envelope of `fade` samples each: no click at the ends."""
    env = np.ones(n)
    fade = min(fade, n // 2)
    if fade:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
        env[:fade] = ramp
        env[n - fade :] = ramp[::-1]
    return env


def log_sweep(
    f0: float = 20.0,
    f1: float | None = None,
    seconds: float = 2.0,
    dbfs: float = -6.0,
    rate: int = 48000,
    bits: int = 32,
    channels: int = 2,
    fade: float = 0.01,
) -> np.ndarray:
    """Exponential (logarithmic) sine sweep from `f0` to `f1` Hz (Farina 2000).

    ``x(t) = sin(2*pi*f0*T/ln(f1/f0) * (exp(t/T*ln(f1/f0)) - 1))``: equal time per octave, so
    every octave gets the same energy. `f1` defaults to ``min(20 kHz, 0.45 * rate)``. The ends
    fade in and out over `fade` seconds.
    """
    f1 = min(20000.0, 0.45 * rate) if f1 is None else f1
    _check_tone(f0, rate)
    _check_tone(f1, rate)
    if not f0 < f1:
        raise ValueError(f"a sweep goes up: f0 ({f0:g} Hz) must be below f1 ({f1:g} Hz)")
    n = _frames(seconds, rate)
    t = np.arange(n) / rate
    k = math.log(f1 / f0)
    x = np.sin(2 * np.pi * f0 * seconds / k * np.expm1(t / seconds * k))
    return _quantize(_check_level(dbfs) * x * _fades(n, round(fade * rate)), bits, channels)


def marker(
    length: int = 4096,
    dbfs: float = -6.0,
    bits: int = 32,
    channels: int = 2,
    seed: int = 0x12C5,
) -> np.ndarray:
    """A pseudo-random binary burst (+-peak), a different one on each channel, to time the path.

    White binary noise correlates to a single sharp peak (its autocorrelation is a spike of
    height `length` over sidelobes of about sqrt(length)), so its position in a recording is
    exact to the sample; its sign gives the polarity and, as every channel carries its own
    sequence, which played channel a recorded channel came from. `dbfs` is the level of a sine
    with the same peak.
    """
    if length < 64:
        raise ValueError(f"a marker of {length} samples is too short to find reliably (64 at least)")
    rng = np.random.default_rng(seed)
    chips = rng.integers(0, 2, size=(length, channels)) * 2.0 - 1.0
    return _quantize(_check_level(dbfs) * chips, bits, channels)


@dataclass(frozen=True)
class SignalInfo:
    """Where the parts of a `test_signal` are, and what the stimulus is (all JSON-able).

    Attributes
    ----------
    kind : str
        ``"sine"``, ``"multitone"`` or ``"sweep"``.
    freqs : tuple of float
        The sine's frequency, the multitone's frequencies, or the sweep's ``(f0, f1)``.
    marker_start, marker_length, stimulus_start, stimulus_length : int
        Frame positions in the played samples.
    """

    kind: str
    rate: int
    bits: int
    channels: int
    freqs: tuple[float, ...]
    dbfs: float
    marker_start: int
    marker_length: int
    stimulus_start: int
    stimulus_length: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["freqs"] = list(self.freqs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SignalInfo:
        known = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if k == "freqs" else v) for k, v in d.items() if k in known})


def test_signal(
    kind: str = "sine",
    *,
    rate: int = 48000,
    bits: int = 32,
    channels: int = 2,
    freq: float = 997.0,
    freqs: tuple[float, ...] = (100.0, 997.0, 3000.0, 8000.0),
    f0: float = 20.0,
    f1: float | None = None,
    dbfs: float = -6.0,
    seconds: float = 1.2,
    lead: float = 0.1,
    gap: float = 0.25,
    tail: float = 0.1,
) -> tuple[np.ndarray, SignalInfo]:
    """The full test: silence (`lead` s), the marker, silence (`gap` s), the stimulus, silence (`tail` s).

    The gap lets the marker's echo die out before the stimulus; the tail catches the end of a
    delayed stimulus. The stimulus is a `sine` at `freq`, a `multitone` at `freqs` or a
    `log_sweep` from `f0` to `f1`, at `dbfs` (per tone for a multitone), for `seconds`.

    Returns
    -------
    samples : numpy.ndarray
        Integer samples ``(frames, channels)``.
    info : SignalInfo
        Where the marker and the stimulus start, to give to `analyse`.
    """
    if kind == "sine":
        stim, tones = sine(freq, dbfs, seconds, rate, bits, channels), (freq,)
    elif kind == "multitone":
        stim, tones = multitone(freqs, dbfs, seconds, rate, bits, channels), tuple(freqs)
    elif kind == "sweep":
        f1 = min(20000.0, 0.45 * rate) if f1 is None else f1
        stim, tones = log_sweep(f0, f1, seconds, dbfs, rate, bits, channels), (f0, f1)
    else:
        raise ValueError(f"unknown test signal {kind!r} (sine, multitone or sweep)")
    mark = marker(bits=bits, channels=channels)
    silence = [np.zeros((round(s * rate), channels), dtype=stim.dtype) for s in (lead, gap, tail)]
    samples = np.concatenate([silence[0], mark, silence[1], stim, silence[2]])
    info = SignalInfo(
        kind=kind,
        rate=rate,
        bits=bits,
        channels=channels,
        freqs=tuple(float(f) for f in tones),
        dbfs=float(dbfs),
        marker_start=len(silence[0]),
        marker_length=len(mark),
        stimulus_start=len(silence[0]) + len(mark) + len(silence[1]),
        stimulus_length=len(stim),
    )
    return samples, info


test_signal.__test__ = False  # not a pytest test, whatever imports it



def plucked_song(rate: int, seconds: float, seed: int = 1, level_dbfs: float = -18.0,
                 noise_db: float = -46.0) -> np.ndarray:
    """A song-like test signal: plucked chords, one every half second, each note a decaying
    harmonic tone (higher harmonics die faster, a 2 ms attack) panned across the stereo field,
    at `level_dbfs` RMS, plus white noise `noise_db` under it (a recording's noise floor).
    int16, shape (frames, 2). Used by tests/e2e/test_fit.py and bench figure 11."""
    n = int(rate * seconds)
    y = np.zeros((n, 2))
    chords = [(220.0, 277.18, 329.63), (196.0, 246.94, 293.66), (174.61, 220.0, 261.63), (196.0, 246.94, 311.13)]
    step = rate // 2
    for c, i in enumerate(range(0, n, step)):
        t = np.arange(n - i) / rate
        attack = np.minimum(1.0, t / 0.002)
        for j, f in enumerate(chords[c % len(chords)]):
            pan = (j + 1) / 4
            for h in range(1, 9):
                if f * h < 0.45 * rate:
                    s = attack * np.exp(-t * (1.5 + 0.8 * h)) / h * np.sin(2 * np.pi * f * h * t)
                    y[i:, 0] += s * (1 - pan)
                    y[i:, 1] += s * pan
    y *= 10 ** (level_dbfs / 20) / np.sqrt((y ** 2).mean())
    y += np.random.default_rng(seed).normal(0, 10 ** ((level_dbfs + noise_db) / 20), y.shape)
    return np.clip(np.round(y * 32768), -32768, 32767).astype(np.int16)
