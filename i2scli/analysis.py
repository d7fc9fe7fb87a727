"""Audio-path measurements for `i2s test`: test signals, measures of a recording against what
was played, verdicts against limits, and a JUnit report. numpy only; the methods and their
references are in docs/test.md.

Conventions:

* Samples are integer arrays of shape ``(frames, channels)`` (a 1-D array is one channel),
  int16 for a 16-bit bus and int32 for a 32-bit bus, as on the I2S wire; full scale is
  ``2**(bits - 1)``.
* Levels are dBFS as AES17 defines them: a sine whose peak reaches full scale is 0 dBFS, so
  the level of any signal is ``20*log10(rms * sqrt(2) / full_scale)`` and a -6 dBFS sine
  peaks at about half of full scale.
* Ratios (SNR, THD, THD+N) are in dB relative to the fundamental.

Typical use::

    samples, info = test_signal("sine", rate=48000, bits=32, channels=2)
    recorded = ...  # play `samples` and record the loopback at the same time
    measures = analyse(samples, recorded, 48000, 32, info)
    checks = check(measures, load_limits("limits.toml"))
    junit_xml({"esp32": checks}, "report.xml")
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "OCTAVES",
    "AnalysisError",
    "Check",
    "Glitch",
    "Limits",
    "MarkerMatch",
    "SignalInfo",
    "SineFit",
    "analyse",
    "check",
    "correlate",
    "dc_offset",
    "detect_frequency",
    "find_glitches",
    "find_hum",
    "find_marker",
    "fit_sine",
    "fit_tones",
    "frequency_response",
    "full_scale",
    "glitch_period",
    "junit_xml",
    "level_dbfs",
    "load_limits",
    "log_sweep",
    "marker",
    "match_buffers",
    "multitone",
    "significant_bits",
    "sine",
    "test_signal",
    "to_float",
    "window_snr",
]

#: Octave-band centre frequencies (IEC 61260 nominal values) at which the sweep response is given.
OCTAVES = (31.5, 63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)

_DB_FLOOR = -400.0  # dB values are clamped here so that a perfect path stays JSON-able (no -inf)
_MARKER_MIN_CORRELATION = 0.3  # below this the marker is "not found": noise alone gives under 0.1
_GUARD_S = 0.1  # settling time skipped at each end of the stimulus (AC-coupling high-pass, filters)
WINDOW_S = 0.02  # the short windows of the window SNR (at least two periods of the lowest tone)
IGNORE_START_S = 0.03  # the start of the stimulus the main checks leave to the `start` check


class AnalysisError(ValueError):
    """A recording that cannot be measured, with a one-line message meant for the user."""


# --------------------------------------------------------------------------- conversions


def full_scale(bits: int) -> int:
    """Full scale of a `bits`-bit signed sample: ``2**(bits - 1)`` (a 0 dBFS sine's peak)."""
    if bits not in (8, 16, 24, 32):
        raise ValueError(f"bits must be 16 or 32 (or 8/24), not {bits!r}")
    return 1 << (bits - 1)


def to_float(samples: np.ndarray, bits: int) -> np.ndarray:
    """`samples` as float64 fractions of full scale (same shape)."""
    return np.asarray(samples, dtype=np.float64) / full_scale(bits)


def _db(power_ratio: float) -> float:
    """10*log10 of a power ratio, clamped so that zero gives a finite, JSON-able value."""
    return max(_DB_FLOOR, 10.0 * math.log10(power_ratio)) if power_ratio > 0 else _DB_FLOOR


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


# --------------------------------------------------------------------------- level, frequency, fits


def level_dbfs(x: np.ndarray) -> float:
    """AES17 level of `x` (fractions of full scale): ``20*log10(rms * sqrt(2))`` dBFS."""
    x = np.asarray(x, dtype=np.float64)
    return _db(2 * float(np.mean(x * x))) if len(x) else _DB_FLOOR


def dc_offset(x: np.ndarray) -> float:
    """Mean of `x` (a fraction of full scale, signed)."""
    return float(np.mean(x))


def _blackman_harris(n: int) -> np.ndarray:
    """4-term Blackman-Harris window: sidelobes at -92 dB, so a strong tone hides nothing above."""
    a = (0.35875, 0.48829, 0.14128, 0.01168)
    t = 2 * np.pi * np.arange(n) / n
    return a[0] - a[1] * np.cos(t) + a[2] * np.cos(2 * t) - a[3] * np.cos(3 * t)


def _spectrum(x: np.ndarray, rate: int, pad: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude spectrum of `x` minus its mean, windowed and zero-padded `pad` times: (freqs, mags)."""
    n = len(x)
    nfft = pad * n
    mag = np.abs(np.fft.rfft((x - np.mean(x)) * _blackman_harris(n), nfft))
    return np.fft.rfftfreq(nfft, 1 / rate), mag


def _interpolated_peak(freqs: np.ndarray, mag: np.ndarray, i: int) -> float:
    """Frequency of the peak at bin `i`, refined by a parabola through the log magnitudes of bins i-1..i+1."""
    if not 0 < i < len(mag) - 1:
        return float(freqs[i])
    a, b, c = np.log(mag[i - 1 : i + 2] + 1e-300)
    denom = a - 2 * b + c
    delta = 0.5 * (a - c) / denom if denom < 0 else 0.0
    return float(freqs[i] + delta * (freqs[1] - freqs[0]))


def detect_frequency(x: np.ndarray, rate: int, band: tuple[float, float] | None = None) -> float:
    """Frequency (Hz) of the strongest tone in `x`, optionally searched within `band` (Hz).

    The peak of a Blackman-Harris windowed, 4x zero-padded FFT, refined by quadratic
    interpolation of the log magnitude. For a 1 s, 48 kHz capture of a 997 Hz tone the error
    is below 0.001 Hz without noise and well below 0.1 Hz with noise at -60 dBFS. Bins under
    7 Hz are ignored (DC, as alsabat does).

    Raises AnalysisError if `x` is constant (nothing to detect).
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 16 or np.ptp(x) == 0:
        raise AnalysisError("no tone to detect: the signal is constant")
    freqs, mag = _spectrum(x, rate)
    lo, hi = band if band else (7.0, rate / 2)
    idx = np.flatnonzero((freqs >= lo) & (freqs <= hi))
    if not len(idx):
        raise AnalysisError(f"the band {lo:g}..{hi:g} Hz holds no frequency bin")
    return _interpolated_peak(freqs, mag, int(idx[np.argmax(mag[idx])]))


@dataclass
class SineFit:
    """A least-squares fit of a sine, its harmonics and DC to a signal.

    Attributes
    ----------
    freq : float
        Fitted fundamental frequency (Hz).
    amplitudes : numpy.ndarray
        Peak amplitude of harmonic k+1 at index k (``amplitudes[0]`` is the fundamental),
        fractions of full scale.
    phases : numpy.ndarray
        Their phases (radians) at sample 0 of the fitted signal, as ``A*cos(k*w*n + phase)``.
    dc : float
        DC offset.
    residual : numpy.ndarray
        The signal minus the fit: noise, hum, glitches (everything but the fundamental,
        its harmonics and DC).
    """

    freq: float
    amplitudes: np.ndarray
    phases: np.ndarray
    dc: float
    residual: np.ndarray

    def model(self, n: np.ndarray, harmonics: slice = slice(None)) -> np.ndarray:
        """The fitted harmonics (all by default) at sample positions `n`, without DC."""
        k = np.arange(1, len(self.amplitudes) + 1)[harmonics]
        w = 2 * np.pi * self.freq
        return (self.amplitudes[harmonics] * np.cos(np.outer(n, k * w) + self.phases[harmonics])).sum(axis=1)


def _harmonic_basis(t: np.ndarray, w: float, ks: np.ndarray) -> np.ndarray:
    """Columns cos(k*w*t), sin(k*w*t) for each k, then a constant (DC)."""
    ph = np.outer(t, ks * w)
    return np.hstack([np.cos(ph), np.sin(ph), np.ones((len(t), 1))])


def fit_sine(x: np.ndarray, rate: int, freq: float | None = None, harmonics: int = 10, iterations: int = 4) -> SineFit:
    """Fit a sine, its harmonics 2..`harmonics` (those below Nyquist) and DC to `x` (IEEE 1057 four-parameter fit).

    The frequency starts at `freq` (default: `detect_frequency`) and is refined by Gauss-Newton
    steps, so the residual is what an ideal notch filter at the exact frequency would leave:
    a frequency error of a millihertz would otherwise leave the fundamental in the residual.
    """
    x = np.asarray(x, dtype=np.float64)
    f = detect_frequency(x, rate) if freq is None else float(freq)
    ks = np.arange(1, max(1, min(harmonics, int((rate / 2 - 1) // f))) + 1)
    nk = len(ks)
    t = np.arange(len(x)) - (len(x) - 1) / 2  # centred: the frequency column stays well conditioned
    w = 2 * np.pi * f / rate
    for _ in range(iterations):
        basis = _harmonic_basis(t, w, ks)
        coef = np.linalg.lstsq(basis, x, rcond=None)[0]
        a, b = coef[:nk], coef[nk : 2 * nk]
        # d(model)/dw = sum_k k*t*(-a_k sin + b_k cos)
        dw = t * ((basis[:, nk : 2 * nk] * -a + basis[:, :nk] * b) @ ks)
        step = np.linalg.lstsq(np.hstack([basis, dw[:, None]]), x, rcond=None)[0][-1]
        w += step
        if abs(step) < 1e-13:
            break
    basis = _harmonic_basis(t, w, ks)
    coef = np.linalg.lstsq(basis, x, rcond=None)[0]
    a, b = coef[:nk], coef[nk : 2 * nk]
    # a*cos + b*sin = A*cos(kwt + phi) with phi = atan2(-b, a); shift the phase from the centre to sample 0
    phases = np.arctan2(-b, a) - ks * w * (len(x) - 1) / 2
    return SineFit(
        freq=w * rate / (2 * np.pi),
        amplitudes=np.hypot(a, b),
        phases=np.mod(phases + np.pi, 2 * np.pi) - np.pi,
        dc=float(coef[-1]),
        residual=x - basis @ coef,
    )


def fit_tones(x: np.ndarray, rate: int, freqs: list[float] | tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares amplitudes of tones at the known `freqs` (plus DC) in `x`: (amplitudes, residual).

    The frequencies are not refined: this assumes the player and the recorder share a clock, as
    the two buses of one board do.
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.arange(len(x))
    ph = np.outer(t, 2 * np.pi * np.asarray(freqs) / rate)
    basis = np.hstack([np.cos(ph), np.sin(ph), np.ones((len(x), 1))])
    coef = np.linalg.lstsq(basis, x, rcond=None)[0]
    k = len(freqs)
    return np.hypot(coef[:k], coef[k : 2 * k]), x - basis @ coef


def find_hum(residual: np.ndarray, rate: int, band: tuple[float, float] = (40.0, 70.0)) -> tuple[float, float] | None:
    """Mains hum in `residual` (a `SineFit` residual): (frequency Hz, level dBFS) of the strongest
    component in `band` (50 and 60 Hz mains), or None if the capture is too short to resolve it."""
    residual = np.asarray(residual, dtype=np.float64)
    if len(residual) < 8 * rate / band[0] or np.ptp(residual) == 0:
        return None
    hz = detect_frequency(residual, rate, band)
    amp, _ = fit_tones(residual, rate, [hz])
    return hz, _db(float(amp[0]) ** 2)


# --------------------------------------------------------------------------- latency and wiring


def correlate(x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cross-correlation of `x` with `ref` at every lag where they overlap, by FFT: (lags, values).

    ``values[i] = sum_n x[n + lags[i]] * ref[n]``; lags run from ``-(len(ref) - 1)`` to ``len(x) - 1``.
    """
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    m = len(ref)
    n = 1 << (len(x) + m - 1).bit_length()
    c = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(ref, n)), n)
    return np.arange(-(m - 1), len(x)), np.concatenate([c[n - (m - 1) :], c[: len(x)]])


@dataclass(frozen=True)
class MarkerMatch:
    """Where a marker sits in a recorded channel: `lag` (frames), normalised correlation `coef`
    (-1..1, negative when the path inverts polarity)."""

    lag: int
    coef: float


def find_marker(x: np.ndarray, ref: np.ndarray) -> MarkerMatch:
    """Position of `ref` in `x` (the lag of the largest correlation magnitude), exact to the sample."""
    lags, c = correlate(x, ref)
    i = int(np.argmax(np.abs(c)))
    lag = int(lags[i])
    seg = np.asarray(x[max(lag, 0) : lag + len(ref)], dtype=np.float64)
    ref_seg = np.asarray(ref[max(-lag, 0) : max(-lag, 0) + len(seg)], dtype=np.float64)
    norm = math.sqrt(float(seg @ seg) * float(ref_seg @ ref_seg))
    return MarkerMatch(lag, float(c[i]) / norm if norm else 0.0)


def _match_channels(recorded: np.ndarray, played_marker: np.ndarray) -> list[tuple[int, MarkerMatch]]:
    """For each recorded channel, the played channel whose marker it carries best, and the match."""
    out = []
    for i in range(recorded.shape[1]):
        matches = [find_marker(recorded[:, i], played_marker[:, j]) for j in range(played_marker.shape[1])]
        j = int(np.argmax([abs(m.coef) for m in matches]))
        out.append((j, matches[j]))
    return out


# --------------------------------------------------------------------------- glitches, bits


@dataclass(frozen=True)
class Glitch:
    """One glitch in a recorded sine.

    Attributes
    ----------
    kind : str
        ``"dropout"``: samples missing (the phase jumps forward) or replaced by silence;
        ``"repeat"``: samples played again (the phase jumps back);
        ``"discontinuity"``: a click with no lasting phase change.
    position : int
        First disturbed frame, in the analysed array.
    length : int
        Frames disturbed (the silent run for a silent dropout).
    samples : float or None
        The phase jump in samples: positive forward (missing), negative back (repeated); known
        only modulo the sine's period, so a loss of whole periods looks like none.
    """

    kind: str
    position: int
    length: int
    samples: float | None


def _runs(mask: np.ndarray, merge: int) -> np.ndarray:
    """Start and end (inclusive) of the runs of True in `mask`, runs closer than `merge` joined: (k, 2)."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return np.empty((0, 2), dtype=int)
    breaks = np.flatnonzero(np.diff(idx) > merge)
    return np.column_stack([idx[np.r_[0, breaks + 1]], idx[np.r_[breaks, len(idx) - 1]]])


def _local_phase(x: np.ndarray, n: np.ndarray, w: float) -> float:
    """Phase of the sine at angular frequency `w` (rad/sample) fitted to x[n] (with DC), at n = 0."""
    basis = np.column_stack([np.cos(w * n), np.sin(w * n), np.ones(len(n))])
    a, b, _ = np.linalg.lstsq(basis, x[n], rcond=None)[0]
    return math.atan2(-b, a)


def _spikes(x: np.ndarray, rate: int, fit: SineFit, threshold: float) -> np.ndarray:
    """Where the prediction error of `x` against the sine of `fit` (its harmonics and DC removed)
    exceeds the limit `find_glitches` describes: a boolean mask."""
    w = 2 * np.pi * fit.freq / rate
    clean = x - fit.dc - fit.model(np.arange(len(x)) / rate, slice(1, None))
    e = np.zeros(len(x))
    e[2:] = clean[2:] - 2 * math.cos(w) * clean[1:-1] + clean[:-2]
    sigma = 1.4826 * float(np.median(np.abs(e[2:] - np.median(e[2:])))) if len(x) > 2 else 0.0
    limit = max(threshold * sigma, 1e-4 * float(fit.amplitudes[0]))
    spikes = np.abs(e) > limit
    spikes[:2] = False
    return spikes


def find_glitches(x: np.ndarray, rate: int, fit: SineFit | None = None, threshold: float = 8.0) -> list[Glitch]:
    """Dropouts, repeats and discontinuities in `x`, a recorded sine (fractions of full scale).

    A pure sine obeys ``x[n] = 2*cos(w)*x[n-1] - x[n-2]`` exactly, so the prediction error
    ``e[n] = x[n] - 2*cos(w)*x[n-1] + x[n-2]`` (after removing the fitted harmonics and DC) is
    noise everywhere except where the waveform breaks. Samples where ``|e|`` exceeds `threshold`
    robust standard deviations (median absolute deviation), and at least -80 dB of the sine,
    are glitches; runs of exact zeros (4 or more) are silent dropouts. Each glitch is classified
    by the phase of the sine fitted just before and just after it.

    A fit over the whole signal is wrong on both sides of a phase jump (a lost or repeated
    block): its frequency is pulled and its harmonics pick up the jump's spectrum, and their
    error through the predictor can cross the -80 dB floor hundreds of times. So the pieces
    between the phase jumps found first are fitted again on their own, and searched again.
    """
    x = np.asarray(x, dtype=np.float64)
    fit = fit_sine(x, rate) if fit is None else fit
    w = 2 * np.pi * fit.freq / rate
    period = 2 * np.pi / w
    window = int(min(4 * period, 0.02 * rate)) + 8
    zero_runs = _runs(x == 0, 1)
    silent = zero_runs[zero_runs[:, 1] - zero_runs[:, 0] >= 3]

    def classify(spikes: np.ndarray) -> list[Glitch]:
        for a, b in silent:
            spikes[a : b + 1] = True
        events = _runs(spikes, 8)
        out = []
        for i, (a, b) in enumerate(events):
            lo = events[i - 1, 1] + 1 if i else 0
            hi = events[i + 1, 0] if i + 1 < len(events) else len(x)
            before = np.arange(max(lo, a - window), a)
            after = np.arange(b + 1, min(hi, b + 1 + window))
            shift = None
            if len(before) >= 8 and len(after) >= 8:
                jump = _local_phase(x, after, w) - _local_phase(x, before, w)
                shift = float((jump + np.pi) % (2 * np.pi) - np.pi) / w
            is_silent = bool(np.any((silent[:, 0] >= a) & (silent[:, 1] <= b))) if len(silent) else False
            if is_silent or (shift is not None and shift >= 0.5):
                kind = "dropout"
            elif shift is not None and shift <= -0.5:
                kind = "repeat"
            else:
                kind = "discontinuity"
            out.append(Glitch(kind, int(a), int(b - a + 1), None if shift is None else round(float(shift), 2)))
        return out

    spikes = _spikes(x, rate, fit, threshold)
    found = classify(spikes.copy())
    jumps = [g for g in found if g.kind != "discontinuity"]
    if not jumps:
        return found
    # each piece between two phase jumps, fitted on its own (a piece too short to fit keeps its marks)
    edges = [0, *[p for g in jumps for p in (g.position, g.position + g.length)], len(x)]
    for lo, hi in zip(edges[::2], edges[1::2]):
        if hi - lo >= 4 * window:
            piece = fit_sine(x[lo:hi], rate, freq=fit.freq)
            spikes[lo:hi] = _spikes(x[lo:hi], rate, piece, threshold)
    return classify(spikes)


def significant_bits(samples: np.ndarray, bits: int) -> int:
    """How many of the `bits` bits of `samples` carry information: `bits` minus the low bits that
    are zero in every sample (a 24-bit microphone in a 32-bit slot gives 24). 0 for silence."""
    a = np.asarray(samples).astype(np.int64).ravel()
    ored = int(np.bitwise_or.reduce(a & ((1 << bits) - 1))) if len(a) else 0
    if ored == 0:
        return 0
    return bits - ((ored & -ored).bit_length() - 1)


def window_snr(
    x: np.ndarray, basis: np.ndarray, signal: list[int], length: int, lo: int = 0, hi: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """SNR (dB) of `x` in windows of `length` frames, every half window from `lo` while they end
    by `hi`: (window starts, SNRs). In each window `x` is fitted by least squares with the
    columns of `basis`; the SNR is the mean square of the fitted `signal` columns over that of
    the residual (the other columns, harmonics and DC, count as neither). A window whose fit
    holds no signal reads -400 dB; a perfect one +400 dB."""
    hi = len(x) if hi is None else hi
    starts = np.arange(lo, hi - length + 1, max(1, length // 2))
    out = np.empty(len(starts))
    for i, a in enumerate(starts):
        b, y = basis[a : a + length], x[a : a + length]
        coef = np.linalg.lstsq(b, y, rcond=None)[0]
        ps = float(np.mean((b[:, signal] @ coef[signal]) ** 2))
        pn = float(np.mean((y - b @ coef) ** 2))
        out[i] = _db(ps / pn) if pn > 0 else (-_DB_FLOOR if ps > 0 else _DB_FLOOR)
    return starts, out


def glitch_period(positions: list[int] | np.ndarray, tolerance: float = 4.0) -> dict[str, Any] | None:
    """Whether glitches at `positions` (frames) recur with a period: None, or ``frames`` (the
    period, fitted by least squares), ``count`` (glitches on it) and ``first`` (the first one).

    Each spacing of two neighbours is a candidate; a glitch is on a candidate's grid when it
    lies within `tolerance` frames (or 0.5 %) of a whole number of periods from the others.
    The period found puts 3 glitches or more, and at least half of them, on the grid and fills
    at least half of its slots from the first to the last; the most glitches win, then the
    shortest period."""
    pos = np.unique(np.asarray(positions, dtype=np.int64))[:256]
    if len(pos) < 3:
        return None
    d = np.diff(pos)
    cands, counts = np.unique(d[d >= 8], return_counts=True)
    best: tuple[int, float, np.ndarray] | None = None
    for c in cands[np.argsort(-counts, kind="stable")][:32].astype(float):
        tol = max(tolerance, 0.005 * c)
        rho = pos % c
        near = np.abs((rho[:, None] - rho[None, :] + c / 2) % c - c / 2) <= tol  # circular distance
        on = near[int(np.argmax(near.sum(axis=1)))]
        k = np.rint((pos[on] - pos[on][0]) / c)
        n_on = int(on.sum())
        if n_on < max(3, len(pos) / 2) or n_on < 0.5 * (k[-1] + 1):
            continue
        if best is None or n_on > best[0] or (n_on == best[0] and c < best[1]):
            best = (n_on, c, on)
    if best is None:
        return None
    on = best[2]
    k = np.rint((pos[on] - pos[on][0]) / best[1])
    slope = float(np.polyfit(k, pos[on].astype(float), 1)[0])
    return {"frames": round(slope, 2), "count": best[0], "first": int(pos[on][0])}


def match_buffers(period: float, buffers: dict[str, int], tolerance: float = 4.0) -> list[dict[str, Any]]:
    """The buffers of a session (name: frames) whose size, once to four times, is `period`
    frames within `tolerance` (or 0.5 %): [{``buffer``, ``frames``, ``multiple``}]. A dropout
    of a whole buffer every k buffers shows as k-1 of them (the recording lacks the lost one)."""
    tol = max(tolerance, 0.005 * period)
    return [
        {"buffer": name, "frames": int(size), "multiple": k}
        for name, size in buffers.items()
        if size > 0
        for k in range(1, 5)
        if abs(period - k * size) <= tol
    ]


# --------------------------------------------------------------------------- frequency response


def frequency_response(
    played: np.ndarray,
    recorded: np.ndarray,
    rate: int,
    points: tuple[float, ...] = OCTAVES,
    band: float = 1 / 12,
    f_range: tuple[float, float] | None = None,
) -> dict[str, float]:
    """Gain (dB) of the path at each frequency of `points`, from a sweep: ratio of spectra.

    ``H(f) = Y(f) / X(f)`` (Farina's deconvolution done in the frequency domain), as the power
    ratio summed over `band` octaves around each point. `recorded` must start where `played`
    starts (latency removed) and may run longer (the path's tail). Points outside `f_range`
    (the sweep's range, with a sixth of an octave of margin) or not below Nyquist are left out.
    Keys are the frequencies as text ("31.5", "1000"), for JSON.
    """
    n = max(len(played), len(recorded))
    px = np.abs(np.fft.rfft(np.asarray(played, dtype=np.float64), n)) ** 2
    py = np.abs(np.fft.rfft(np.asarray(recorded, dtype=np.float64), n)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / rate)
    lo_f, hi_f = f_range if f_range else (0.0, rate / 2)
    margin = 2 ** (1 / 6)
    pts = np.array([p for p in points if lo_f * margin <= p <= hi_f / margin and p < rate / 2])
    if not len(pts):
        return {}
    cx, cy = np.r_[0, np.cumsum(px)], np.r_[0, np.cumsum(py)]
    lo = np.searchsorted(freqs, pts * 2 ** (-band / 2))
    hi = np.maximum(np.searchsorted(freqs, pts * 2 ** (band / 2)), lo + 1)
    ratio = (cy[hi] - cy[lo]) / np.maximum(cx[hi] - cx[lo], 1e-300)
    return {f"{p:g}": _db(float(r)) for p, r in zip(pts, ratio)}


# --------------------------------------------------------------------------- analyse


def _r(v: float, nd: int = 4) -> float:
    return round(float(v), nd)


def _windows(info: SignalInfo, latency: int, n_rec: int) -> tuple[slice, slice]:
    """Analysis windows (played, recorded): the stimulus without its first and last settling time."""
    guard = min(round(_GUARD_S * info.rate), info.stimulus_length // 4)
    start = info.stimulus_start + guard
    length = info.stimulus_length - 2 * guard
    rec_start = start + latency
    rec_stop = min(rec_start + length, n_rec)
    if rec_start < 0 or rec_stop - rec_start < min(length, info.rate // 10):
        raise AnalysisError(
            f"the recording ({n_rec} frames) does not hold the stimulus (frames {rec_start}..{rec_start + length}"
            f" at a latency of {latency}): record longer"
        )
    return slice(start, start + (rec_stop - rec_start)), slice(rec_start, rec_stop)


def _sine_measures(p: np.ndarray, r: np.ndarray, rate: int, fr: SineFit) -> dict[str, Any]:
    """Frequency, gain, SNR, THD, THD+N, hum and DC of a recorded sine `r` (fitted: `fr`) against `p`."""
    fp = fit_sine(p, rate)
    fund = float(fr.amplitudes[0]) ** 2 / 2
    harm = float(np.sum(fr.amplitudes[1:] ** 2)) / 2
    noise = float(np.mean(fr.residual**2))
    hum = find_hum(fr.residual, rate) if not 40 <= fr.freq <= 70 else None
    return {
        "freq_hz": _r(fr.freq),
        "played_freq_hz": _r(fp.freq),
        "fundamental_dbfs": _r(_db(2 * fund)),
        "gain_db": _r(_db(2 * fund) - _db(float(fp.amplitudes[0]) ** 2)),
        "snr_db": _r(_db(fund / noise) if noise else -_DB_FLOOR),
        "thd_db": _r(_db(harm / fund) if fund else 0.0),
        "thd_n_db": _r(_db((harm + noise) / fund) if fund else 0.0),
        "harmonics_db": [_r(_db(float(a) ** 2 / float(fr.amplitudes[0]) ** 2), 2) for a in fr.amplitudes[1:]],
        "hum_hz": None if hum is None else _r(hum[0], 2),
        "hum_dbfs": None if hum is None else _r(hum[1], 2),
        "dc": _r(fr.dc, 8),
    }


def _window_frames(info: SignalInfo) -> int:
    """Frames of a window-SNR window: 20 ms, or two periods of the lowest tone if longer."""
    if info.kind == "sweep":
        return round(WINDOW_S * info.rate)
    return round(max(WINDOW_S, 2 / min(info.freqs)) * info.rate)


def _hilbert(x: np.ndarray) -> np.ndarray:
    """The quadrature of `x` (its Hilbert transform, by FFT): `x` shifted 90 degrees at every frequency."""
    n = len(x)
    h = np.zeros(n)
    h[0] = 1
    h[1 : (n + 1) // 2] = 2
    if n % 2 == 0:
        h[n // 2] = 1
    return np.fft.ifft(np.fft.fft(x) * h).imag


def _scan_basis(info: SignalInfo, p: np.ndarray, fr: SineFit | None) -> tuple[np.ndarray, list[int]]:
    """The reference fitted in each window, and which of its columns are the signal (window_snr)."""
    t = np.arange(len(p), dtype=np.float64)
    if info.kind == "sine":
        ks = np.arange(1, len(fr.amplitudes) + 1)
        return _harmonic_basis(t, 2 * np.pi * fr.freq / info.rate, ks), [0, len(ks)]
    if info.kind == "multitone":
        ph = np.outer(t, 2 * np.pi * np.asarray(info.freqs) / info.rate)
        k = len(info.freqs)
        return np.hstack([np.cos(ph), np.sin(ph), np.ones((len(t), 1))]), list(range(2 * k))
    return np.column_stack([p, _hilbert(p), np.ones(len(p))]), [0, 1]


def _worst(starts: np.ndarray, snr: np.ndarray, offset: int, rate: int, length: int,
           glitches: list[int]) -> dict[str, Any]:
    """The window of least SNR: its SNR, first frame (in the recording), time and whether it holds a glitch."""
    if not len(snr):
        return {"min_window_snr_db": None, "min_window_snr_frame": None, "min_window_snr_s": None,
                "min_window_snr_glitch": None}
    i = int(np.argmin(snr))
    a = int(starts[i]) + offset
    return {
        "min_window_snr_db": _r(snr[i], 2),
        "min_window_snr_frame": a,
        "min_window_snr_s": _r(a / rate, 4),
        "min_window_snr_glitch": any(a <= g < a + length for g in glitches),
    }


def _scan_measures(info: SignalInfo, p: np.ndarray, x: np.ndarray, offset: int, fr: SineFit | None,
                   fit_start: int, ignore: int, buffers: dict[str, int] | None) -> dict[str, Any]:
    """Window SNR, glitches and their period over the stimulus `x` (played: `p`) from its first
    frame (`offset` in the recording) to its end guard; the first `ignore` frames apart (``start``).
    `fr`: a sine's whole-file fit, of the recording from frame `fit_start`."""
    rate = info.rate
    length = _window_frames(info)
    if len(x) - ignore < length:
        raise AnalysisError(
            f"ignoring the first {1000 * ignore / rate:g} ms of the stimulus leaves less than a"
            f" {1000 * length / rate:g} ms window of it: ignore less (--ignore-start) or play longer"
        )
    out: dict[str, Any] = {}
    main: list[Glitch] = []
    early: list[Glitch] = []
    if info.kind == "sine":
        # the whole-file fit (on the guarded window) moved to this array's first frame
        d = offset - fit_start
        ks = np.arange(1, len(fr.amplitudes) + 1)
        phases = fr.phases + ks * 2 * np.pi * fr.freq / rate * d
        fit = SineFit(fr.freq, fr.amplitudes, phases, fr.dc, np.empty(0))
        for g in find_glitches(x, rate, fit):
            (early if g.position < ignore else main).append(Glitch(g.kind, g.position + offset, g.length, g.samples))
        out["glitches"] = [asdict(g) for g in main]
        out["glitch_count"] = len(main)
        period = glitch_period([g.position for g in early + main])
        out["glitch_period_frames"] = None if period is None else period["frames"]
        out["glitch_period_ms"] = None if period is None else _r(1000 * period["frames"] / rate, 3)
        out["glitch_period_count"] = None if period is None else period["count"]
        out["glitch_period_matches"] = (
            None if period is None or buffers is None else match_buffers(period["frames"], buffers)
        )
        if early or main:  # phase jumps pull the whole-file frequency: take it where nothing broke
            edges = [0] + [v for g in early + main for v in (g.position - offset, g.position - offset + g.length)]
            edges.append(len(x))
            a, b = max(zip(edges[::2], edges[1::2]), key=lambda ab: ab[1] - ab[0])
            if b - a >= 2 * length:
                fr = fit_sine(x[a:b], rate, fr.freq)
    basis, signal = _scan_basis(info, p, fr)
    starts, snr = window_snr(x, basis, signal, length, ignore)
    out.update(_worst(starts, snr, offset, rate, length, [g.position for g in main]))
    if ignore:
        starts, snr = window_snr(x, basis, signal, min(length, ignore), 0, ignore)
        w = _worst(starts, snr, offset, rate, min(length, ignore), [g.position for g in early])
        out["start"] = {
            "ms": _r(1000 * ignore / rate, 3),
            **({"glitches": [asdict(g) for g in early], "glitch_count": len(early)} if info.kind == "sine" else {}),
            **w,
        }
    return out


def _multitone_measures(p: np.ndarray, r: np.ndarray, rate: int, freqs: tuple[float, ...]) -> dict[str, Any]:
    ap, _ = fit_tones(p, rate, freqs)
    ar, res = fit_tones(r, rate, freqs)
    tone_power = float(np.sum(ar**2)) / 2
    noise = float(np.mean((res - np.mean(res)) ** 2))
    return {
        "tones": [
            {"hz": f, "dbfs": _r(_db(float(a) ** 2)), "gain_db": _r(_db(float(a) ** 2) - _db(float(b) ** 2))}
            for f, a, b in zip(freqs, ar, ap)
        ],
        "gain_db": _r(_db(tone_power) - _db(float(np.sum(ap**2)) / 2)),
        "snr_db": _r(_db(tone_power / noise) if noise else -_DB_FLOOR),
        "dc": _r(dc_offset(r), 8),
    }


def _sweep_measures(played: np.ndarray, recorded: np.ndarray, info: SignalInfo, latency: int) -> dict[str, Any]:
    start, length = info.stimulus_start, info.stimulus_length
    tail = round(0.1 * info.rate)
    p = played[start : start + length]
    r = recorded[max(start + latency, 0) : start + latency + length + tail]
    resp = frequency_response(p, r, info.rate, f_range=(info.freqs[0], info.freqs[1]))
    return {
        "response_db": {k: _r(v, 3) for k, v in resp.items()},
        "gain_db": _r(level_dbfs(r) - level_dbfs(p)),
        "dc": _r(dc_offset(r), 8),
    }


def _silent_reason(x: np.ndarray, channel: int) -> str | None:
    if np.ptp(x) == 0:
        return f"the loopback carries nothing: recorded channel {channel} is silent (every sample is {int(x[0])})"
    return None


def _channel(
    played: np.ndarray,
    recorded: np.ndarray,
    info: SignalInfo,
    ch: int,
    source: int,
    match: MarkerMatch,
    ignore: int,
    buffers: dict[str, int] | None,
) -> dict[str, Any]:
    """All measures of recorded channel `ch`, whose marker came from played channel `source`."""
    fs = full_scale(info.bits)
    rec_i = recorded[:, ch]
    out: dict[str, Any] = {
        "channel": ch,
        "significant_bits": significant_bits(rec_i, info.bits),
        "error": _silent_reason(rec_i, ch),
    }
    if out["error"]:
        return out
    if abs(match.coef) < _MARKER_MIN_CORRELATION:
        out["error"] = (
            f"the loopback carries nothing recognisable: the marker is not in recorded channel {ch}"
            f" (best correlation {abs(match.coef):.2f}; level {level_dbfs(rec_i / fs):.1f} dBFS)"
        )
        return out
    latency = match.lag - info.marker_start
    out.update(
        source=source,
        inverted=match.coef < 0,
        marker_correlation=_r(match.coef, 3),
        latency_samples=latency,
        latency_ms=_r(1000 * latency / info.rate),
    )
    try:
        pw, rw = _windows(info, latency, len(rec_i))
        sign = -1.0 if match.coef < 0 else 1.0  # measure through an inversion; it is reported on its own
        p = played[pw, source] / fs
        r = sign * rec_i[rw] / fs
        out["level_dbfs"] = _r(level_dbfs(r))
        out["played_level_dbfs"] = _r(level_dbfs(p))
        fr = None
        if info.kind == "sine":
            fr = fit_sine(r, info.rate)
            out.update(_sine_measures(p, r, info.rate, fr))
        elif info.kind == "multitone":
            out.update(_multitone_measures(p, r, info.rate, info.freqs))
        else:
            out.update(_sweep_measures(played[:, source] / fs, sign * rec_i / fs, info, latency))
        # the scan: from the stimulus's first frame (as far as the recording holds it) to the end guard
        a = max(info.stimulus_start + latency, 0)
        skipped = a - (info.stimulus_start + latency)
        x = sign * rec_i[a : rw.stop] / fs
        ps = played[a - latency : rw.stop - latency, source] / fs
        out.update(_scan_measures(info, ps, x, a, fr, rw.start, max(0, ignore - skipped), buffers))
    except AnalysisError as e:
        out["error"] = str(e)
    return out


def analyse(
    played: np.ndarray,
    recorded: np.ndarray,
    rate: int,
    bits: int,
    signal_info: SignalInfo | dict[str, Any],
    *,
    ignore_start: float = IGNORE_START_S,
    buffers: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Measure every recorded channel against what was played; the result is JSON-able.

    Parameters
    ----------
    played, recorded : numpy.ndarray
        Integer samples ``(frames, channels)`` as played and as recorded (the recording may be
        longer or shorter, start earlier or later, and have another number of channels).
    rate, bits : int
        The bus format of both.
    signal_info : SignalInfo or dict
        From `test_signal` (or its `to_dict`).
    ignore_start : float
        Seconds at the start of the stimulus that glitches and the window SNR leave to ``start``.
    buffers : dict, optional
        The session's buffer sizes in frames (name: frames), to name the one a glitch period matches.

    Returns
    -------
    dict
        ``kind``, ``rate``, ``bits``, ``swapped`` (the stereo channels arrive crossed) and
        ``channels``: one dict per recorded channel with ``error`` (None, or why it could not be
        measured, e.g. "the loopback carries nothing"), ``source`` (played channel), ``inverted``,
        ``latency_samples``, ``latency_ms``, ``level_dbfs``, ``significant_bits``, ``dc`` and,
        by stimulus: sine: ``freq_hz``, ``gain_db``, ``snr_db``, ``thd_db``, ``thd_n_db``,
        ``harmonics_db``, ``hum_hz``, ``hum_dbfs``, ``glitches``, ``glitch_count``,
        ``glitch_period_frames``, ``glitch_period_ms``, ``glitch_period_count``,
        ``glitch_period_matches``; multitone: ``tones``, ``gain_db``, ``snr_db``; sweep:
        ``response_db`` (dB at octave points), ``gain_db``; every kind: ``min_window_snr_db``,
        ``min_window_snr_frame``, ``min_window_snr_s``, ``min_window_snr_glitch`` and ``start``
        (the same for the first `ignore_start`, with its glitches for a sine).
    """
    if not 0 <= ignore_start <= 10:
        raise ValueError(f"ignore_start is in seconds between 0 and 10, not {ignore_start!r}")
    ignore = round(ignore_start * rate)
    info = signal_info if isinstance(signal_info, SignalInfo) else SignalInfo.from_dict(signal_info)
    info = SignalInfo(**{**asdict(info), "rate": rate, "bits": bits})
    played, recorded = _as_2d(played), _as_2d(recorded)
    mark = played[info.marker_start : info.marker_start + info.marker_length].astype(np.float64)
    matches = _match_channels(recorded.astype(np.float64), mark)
    channels = [
        _channel(played, recorded, info, ch, src, m, ignore, buffers) for ch, (src, m) in enumerate(matches)
    ]
    sources = [c.get("source") for c in channels]
    return {
        "kind": info.kind,
        "rate": rate,
        "bits": bits,
        "freqs": list(info.freqs),
        "swapped": len(sources) > 1 and sources == list(range(len(sources)))[::-1],
        "window_ms": _r(1000 * _window_frames(info) / rate, 3),
        "ignore_start_ms": _r(1000 * ignore / rate, 3),
        "buffers": buffers,
        "channels": channels,
    }


# --------------------------------------------------------------------------- limits and verdicts


@dataclass(frozen=True)
class Limits:
    """Pass/fail limits for `check`; a limit left at None is not checked.

    Attributes
    ----------
    freq_tolerance : float
        Largest relative frequency error (0.005 = 0.5 %, alsabat's default).
    min_snr, max_thd_n : float
        dB (max_thd_n is below the fundamental, so negative: -60).
    max_latency : float
        Seconds, round trip.
    max_glitches : int
        Dropouts + repeats + discontinuities allowed.
    min_level, max_level : float
        dBFS (AES17 level of the recorded stimulus).
    min_window_snr : float
        dB: the least SNR of any short window (``min_window_snr_db``).
    max_start_glitches : int
        Glitches allowed in the first `ignore_start` of the stimulus (the ``start`` check).
    ignore_start : float
        Seconds at the start of the stimulus that the glitch and window-SNR checks leave to the
        ``start`` check (None: IGNORE_START_S, 30 ms). A setting rather than a limit, kept here so
        that one limits file says how a rig is judged.
    allow_swap, allow_inversion : bool
        Whether crossed channels or an inverted polarity pass the wiring check.
    """

    freq_tolerance: float | None = None
    min_snr: float | None = None
    max_thd_n: float | None = None
    max_latency: float | None = None
    max_glitches: int | None = None
    min_level: float | None = None
    max_level: float | None = None
    min_window_snr: float | None = None
    max_start_glitches: int | None = None
    ignore_start: float | None = None
    allow_swap: bool = False
    allow_inversion: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.startswith("allow_"):
                if not isinstance(v, bool):
                    raise ValueError(f"{f.name} must be true or false, not {v!r}")
            elif v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"{f.name} must be a number, not {v!r}")
        self._check_ranges()

    def _check_ranges(self) -> None:
        def bad(cond: bool, msg: str) -> None:
            if cond:
                raise ValueError(msg)

        t = self.freq_tolerance
        bad(t is not None and not 0 <= t < 1, f"freq_tolerance is a fraction between 0 and 1 (0.005 = 0.5 %), not {t}")
        bad(self.min_snr is not None and self.min_snr < 0, f"min_snr must not be negative ({self.min_snr} dB)")
        bad(
            self.max_thd_n is not None and self.max_thd_n > 0,
            f"max_thd_n is in dB below the fundamental, so negative (-60), not {self.max_thd_n}",
        )
        bad(
            self.max_latency is not None and self.max_latency <= 0,
            f"max_latency is in seconds and must be positive, not {self.max_latency}",
        )
        for name in ("max_glitches", "max_start_glitches"):
            g = getattr(self, name)
            bad(g is not None and (g < 0 or g != int(g)), f"{name} must be a whole number >= 0, not {g}")
        w = self.min_window_snr
        bad(w is not None and w < 0, f"min_window_snr must not be negative ({w} dB)")
        i = self.ignore_start
        bad(i is not None and not 0 <= i <= 10, f"ignore_start is in seconds between 0 and 10, not {i}")
        for name in ("min_level", "max_level"):
            v = getattr(self, name)
            bad(v is not None and v > 3.02, f"{name} {v} dBFS is above what a full-scale signal reaches (+3 dBFS)")
        bad(
            self.min_level is not None and self.max_level is not None and self.min_level > self.max_level,
            f"min_level ({self.min_level} dBFS) is above max_level ({self.max_level} dBFS)",
        )


LIMITS_MAX_BYTES = 64 << 10  # a limits file is a few lines


def load_limits(path: str | Path) -> Limits:
    """Limits from a TOML file: the keys of `Limits` at the top level or in a ``[limits]`` table.

    Raises ValueError with one line naming the file for a file that is missing or cannot be
    read, an unknown key, a wrong type or a nonsense value; on Python 3.10 it needs the `tomli`
    package.
    """
    from i2scli.tomlfile import read_toml

    data = read_toml(path, "limits file", LIMITS_MAX_BYTES)
    table = data.get("limits", data)
    if not isinstance(table, dict):
        raise ValueError(f"{path}: limits must be a table ([limits]), not {table!r}")
    known = [f.name for f in fields(Limits)]
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown limit {unknown[0]!r} (known: {', '.join(known)})")
    try:
        return Limits(**table)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


@dataclass(frozen=True)
class Check:
    """One verdict: `name` (``ch0.snr``), measured `value`, the `limit`, `passed`, and a one-line `message`."""

    name: str
    value: Any
    limit: Any
    passed: bool
    message: str


def _threshold(name: str, value: float | None, limit: float, *, minimum: bool, unit: str, note: str = "") -> Check:
    if value is None:
        return Check(name, None, limit, False, f"{name}: not measured")
    ok = value >= limit if minimum else value <= limit
    word = ("at least" if minimum else "at most") if ok else ("below the minimum" if minimum else "above the maximum")
    return Check(name, value, limit, ok, f"{name} is {value:g}{unit}, {word} {limit:g}{unit}{note}")


def _period_note(c: dict[str, Any]) -> str:
    """``; every N frames (M ms) in the recording: ...`` when the glitches recur, else nothing."""
    if c.get("glitch_period_frames") is None:
        return ""
    note = (f"; {c['glitch_period_count']} of them every {c['glitch_period_frames']:g} frames"
            f" ({c['glitch_period_ms']:g} ms) in the recording")
    matches = c.get("glitch_period_matches")
    if matches:
        return note + ": " + ", ".join(
            (f"{m['multiple']} x " if m["multiple"] > 1 else "") + f"the {m['buffer']} ({m['frames']} frames)"
            for m in matches
        )
    return note + ("" if matches is None else ": no buffer of the session is that long")


def _where(c: dict[str, Any], prefix: str = "min_window_snr") -> str:
    if c.get(f"{prefix}_frame") is None:
        return ""
    held = ", a glitch in it" if c.get(f"{prefix}_glitch") else ""
    return f", at {c[f'{prefix}_s']:g} s (the window from frame {c[f'{prefix}_frame']}{held})"


def _start_check(p: str, c: dict[str, Any], limits: Limits) -> Check:
    """What the first ignore_start of the stimulus holds, judged by max_start_glitches if given."""
    st = c["start"]
    n, limit = st.get("glitch_count"), limits.max_start_glitches
    head = f"{p}.start: the first {st['ms']:g} ms hold"
    if n is None:
        what = " no glitch measure (not a sine)"
    else:
        what = f" {n} glitch{'es' if n != 1 else ''}"
        if st["glitches"]:
            g = st["glitches"][0]
            what += f" (the first a {g['kind']} at frame {g['position']})"
    if st.get("min_window_snr_db") is not None:
        what += f", least window SNR {st['min_window_snr_db']:g} dB"
    if limit is None or n is None:
        return Check(f"{p}.start", n, None, True, head + what + "; not judged (max_start_glitches)")
    ok = n <= limit
    word = ", at most " if ok else ", above the maximum "
    return Check(f"{p}.start", n, limit, ok, f"{head}{what}{word}{limit}")


def _channel_checks(c: dict[str, Any], target: float | None, limits: Limits) -> list[Check]:
    p = f"ch{c['channel']}"
    out = []
    if limits.freq_tolerance is not None and target is not None and "freq_hz" in c:
        f, tol = c["freq_hz"], limits.freq_tolerance
        ok = abs(f - target) <= tol * target
        word = "within" if ok else "outside"
        out.append(
            Check(
                f"{p}.frequency",
                f,
                f"{target:g} Hz +-{tol:.3%}",
                ok,
                f"{p}.frequency is {f:g} Hz, {word} {target:g} Hz +-{tol:.3%}",
            )
        )
    specs = [
        ("snr", c.get("snr_db"), limits.min_snr, True, " dB"),
        ("thd_n", c.get("thd_n_db"), limits.max_thd_n, False, " dB"),
        ("latency", None if c.get("latency_ms") is None else c["latency_ms"] / 1000, limits.max_latency, False, " s"),
        ("glitches", c.get("glitch_count"), limits.max_glitches, False, ""),
        ("min_level", c.get("level_dbfs"), limits.min_level, True, " dBFS"),
        ("max_level", c.get("level_dbfs"), limits.max_level, False, " dBFS"),
        ("window_snr", c.get("min_window_snr_db"), limits.min_window_snr, True, " dB"),
    ]
    notes = {"glitches": _period_note(c), "window_snr": _where(c),
             "latency": "" if c.get("latency_uncertainty_ms") is None
             else f" (measured to +-{c['latency_uncertainty_ms']:g} ms)"}
    for name, value, limit, minimum, unit in specs:
        if limit is not None and (
            value is not None
            or (name in ("snr", "thd_n", "glitches") and c.get("kind") == "sine")
            or name == "window_snr"
        ):
            out.append(_threshold(f"{p}.{name}", value, limit, minimum=minimum, unit=unit, note=notes.get(name, "")))
    if "start" in c and c.get("kind") == "sine":
        out.append(_start_check(p, c, limits))
    problems = []
    if c.get("source") != c["channel"] and not limits.allow_swap:
        problems.append(f"carries played channel {c.get('source')}")
    if c.get("inverted") and not limits.allow_inversion:
        problems.append("has its polarity inverted")
    msg = f"{p} " + (" and ".join(problems) if problems else f"comes from played channel {c.get('source')}")
    out.append(Check(f"{p}.wiring", c.get("source"), c["channel"], not problems, msg))
    return out


def _failed_channel_checks(c: dict[str, Any], limits: Limits, start: bool) -> list[Check]:
    """The same check names as a measured channel, all failed: CI dashboards keep their history.
    `start`: a measured channel would have a ``start`` check."""
    names = ["frequency", "snr", "thd_n", "latency", "glitches", "min_level", "max_level", "window_snr"]
    given = [limits.freq_tolerance, limits.min_snr, limits.max_thd_n, limits.max_latency, limits.max_glitches]
    given += [limits.min_level, limits.max_level, limits.min_window_snr]
    if start:
        names.append("start")
        given.append(limits.max_start_glitches)
    p = f"ch{c['channel']}"
    return [
        Check(f"{p}.{n}", None, v, False, f"{p}.{n} not measured: {c['error']}")
        for n, v in zip(names, given)
        if v is not None or n == "start"
    ]


def check(measures: dict[str, Any], limits: Limits) -> list[Check]:
    """Verdicts of `analyse`'s `measures` against `limits`: for each channel a ``signal`` check
    (fails with the reason when the channel could not be measured, e.g. "the loopback carries
    nothing"), one check per limit given, a ``start`` check for a sine when the start of the
    stimulus was set apart (`ignore_start`), and a ``wiring`` check (swap, polarity)."""
    target = measures["freqs"][0] if measures.get("kind") == "sine" and measures.get("freqs") else None
    out = []
    for c in measures["channels"]:
        p = f"ch{c['channel']}"
        if c.get("error"):
            out.append(Check(f"{p}.signal", None, None, False, c["error"]))
            out += _failed_channel_checks(c, limits, measures.get("kind") == "sine"
                                          and bool(measures.get("ignore_start_ms")))
            continue
        out.append(
            Check(
                f"{p}.signal",
                c.get("marker_correlation"),
                _MARKER_MIN_CORRELATION,
                True,
                f"{p} carries the test signal",
            )
        )
        out += _channel_checks({**c, "kind": measures.get("kind")}, target, limits)
    return out


# --------------------------------------------------------------------------- JUnit


def junit_xml(results: dict[str, list[Check]], path: str | Path) -> Path:
    """Write a JUnit XML report: one ``<testsuite>`` per board, one ``<testcase>`` per check,
    a ``<failure>`` with the check's message for each failed one. Returns the path."""
    root = ET.Element("testsuites", name="i2s test")
    total = failed = 0
    for board, checks in results.items():
        n_fail = sum(not c.passed for c in checks)
        suite = ET.SubElement(root, "testsuite", name=board, tests=str(len(checks)), failures=str(n_fail), errors="0")
        for c in checks:
            case = ET.SubElement(suite, "testcase", classname=f"i2s.test.{board}", name=c.name)
            if not c.passed:
                ET.SubElement(
                    case, "failure", message=c.message, type="limit"
                ).text = f"{c.message}\nvalue: {c.value}\nlimit: {c.limit}"
            else:
                ET.SubElement(case, "system-out").text = c.message
        total += len(checks)
        failed += n_fail
    root.set("tests", str(total))
    root.set("failures", str(failed))
    path = Path(path)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def plucked_song(rate: int, seconds: float, seed: int = 1, level_dbfs: float = -18.0,
                 noise_db: float = -46.0) -> np.ndarray:
    """A song-like test signal: plucked chords, one every half second, each note a decaying
    harmonic tone (higher harmonics die faster, a 2 ms attack) panned across the stereo field,
    at `level_dbfs` RMS, plus white noise `noise_db` under it (a recording's noise floor).
    int16, shape (frames, 2). Used by tests/test_fit.py and bench figure 11."""
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
