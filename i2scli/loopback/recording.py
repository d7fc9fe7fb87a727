"""`analyse`: every measure of every recorded channel against what was played (the marker gives
the latency and the wiring, the stimulus the rest); the result is JSON-able."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from i2scli.loopback.measures import (
    _DB_FLOOR,
    AnalysisError,
    Glitch,
    MarkerMatch,
    SineFit,
    _db,
    _harmonic_basis,
    _match_channels,
    dc_offset,
    find_glitches,
    find_hum,
    fit_sine,
    fit_tones,
    frequency_response,
    glitch_period,
    level_dbfs,
    match_buffers,
    significant_bits,
    window_snr,
)
from i2scli.loopback.signals import SignalInfo, _as_2d, full_scale

_MARKER_MIN_CORRELATION = 0.3  # below this the marker is "not found": noise alone gives under 0.1
_GUARD_S = 0.1  # settling time skipped at each end of the stimulus (AC-coupling high-pass, filters)
WINDOW_S = 0.02  # the short windows of the window SNR (at least two periods of the lowest tone)
IGNORE_START_S = 0.03  # the start of the stimulus the main checks leave to the `start` check


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
