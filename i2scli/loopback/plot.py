"""`i2s test --plot FILE.png|.svg`: what the test saw, as a picture. The spectrum of each
recorded channel (the analysed stimulus, dBFS as AES17 reads it), the waveform around each
glitch, and the path's response for a sweep. matplotlib is an optional extra
(`pip install 'i2scli[plot]'`), imported only here; docs/test.md, "Plots"."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from i2scli.loopback import analysis
from i2scli.loopback.measures import _blackman_harris
from i2scli.loopback.recording import _windows

HINT = "--plot needs matplotlib: pip install 'i2scli[plot]'"
MAX_GLITCHES = 3  # waveforms drawn; the rest are counted


class PlotUnavailable(RuntimeError):
    """matplotlib cannot be imported."""


@dataclass
class Recording:
    """What the test played and recorded (integers as on the wire), kept for --plot and
    --save-recording; never part of the JSON."""

    played: np.ndarray
    recorded: np.ndarray
    info: analysis.SignalInfo


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable(HINT) from None
    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    from matplotlib.figure import Figure

    return Figure


def _window(result: dict, ch: dict, n: int) -> slice:
    """The analysed part of a recorded channel (the whole channel when it was not measured)."""
    total = ch.get("latency_total_samples", ch.get("latency_samples"))
    if total is None:
        return slice(0, n)
    try:
        return _windows(analysis.SignalInfo.from_dict(result["signal"]), total, n)[1]
    except analysis.AnalysisError:
        return slice(0, n)


def spectrum_dbfs(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Blackman-Harris windowed spectrum of `x` (fractions of full scale), scaled so a sine's
    peak reads its AES17 level: a full-scale sine is 0 dBFS."""
    w = _blackman_harris(len(x))
    mag = np.abs(np.fft.rfft((x - np.mean(x)) * w)) * 2 / np.sum(w)
    return np.fft.rfftfreq(len(x), 1 / rate), 20 * np.log10(np.maximum(mag, 1e-10))


def _response_curve(played: np.ndarray, recorded: np.ndarray, rate: int, lo: float, hi: float):
    """|Y/X| in dB on 1/24-octave points from lo to hi (the octave points' method, finer)."""
    pts = lo * 2 ** (np.arange(0, np.log2(hi / lo) * 24 + 1) / 24)
    resp = analysis.frequency_response(played, recorded, rate, points=tuple(pts), band=1 / 24, f_range=(lo, hi))
    return np.array([float(k) for k in resp]), np.array(list(resp.values()))


def write(path: str | Path, result: dict, rec: Recording) -> Path:
    """Draw the test's result to `path` (.png or .svg, by its suffix). PlotUnavailable without matplotlib."""
    Figure = _matplotlib()
    info, rate, bits = rec.info, result["rate"], result["bits"]
    fs = analysis.full_scale(bits)
    channels = result["measures"]["channels"]
    glitches = [(c["channel"], g) for c in channels for g in (c.get("glitches") or [])]
    sweep = info.kind == "sweep"
    rows = 1 + (1 if glitches else 0) + (1 if sweep else 0)
    fig = Figure(figsize=(11, 3.6 * rows), layout="constrained")
    grid = fig.add_gridspec(rows, max(1, min(len(glitches), MAX_GLITCHES)))
    title = f"i2s test: {result.get('board', '')} ({result.get('port', '')}): " \
            f"{'PASS' if result.get('passed') else 'FAIL'}"
    fig.suptitle(title, fontsize=10)

    ax = fig.add_subplot(grid[0, :])
    for c in channels:
        x = rec.recorded[:, c["channel"]].astype(np.float64) / fs
        f, db = spectrum_dbfs(x[_window(result, c, len(x))], rate)
        label = f"ch{c['channel']}" + (f": {c['error'][:60]}" if c.get("error") else
                                        f" SNR {c['snr_db']:.1f} dB" if c.get("snr_db") is not None else "")
        ax.semilogx(f[1:], db[1:], lw=0.7, label=label)
    for tone in info.freqs if not sweep else ():
        ax.axvline(tone, color="grey", lw=0.5, ls=":")
    ax.set(xlim=(10, rate / 2), ylim=(-200, 10), xlabel="Hz", ylabel="dBFS",
           title=f"spectrum of the recorded {info.kind} (analysed window)")
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=8, loc="upper right")

    row = 1
    if glitches:
        half = max(64, round(2 * rate / (info.freqs[0] if info.kind == "sine" else 1000)))
        for i, (ch, g) in enumerate(glitches[:MAX_GLITCHES]):
            gx = fig.add_subplot(grid[row, i])
            pos = g["position"]
            lo, hi = max(pos - half, 0), min(pos + half, len(rec.recorded))
            gx.plot(np.arange(lo, hi), rec.recorded[lo:hi, ch] / fs, lw=0.8)
            gx.axvline(pos, color="red", lw=0.8, ls="--")
            size = f", {g['samples']:+.1f} frames" if g.get("samples") is not None else ""
            gx.set(title=f"ch{ch} {g['kind']} at frame {pos}{size}", xlabel="frame", ylabel="x / full scale")
            gx.title.set_fontsize(9)
        if len(glitches) > MAX_GLITCHES:
            fig.text(0.99, 0.01, f"{len(glitches)} glitches, {MAX_GLITCHES} drawn", ha="right", fontsize=8)
        row += 1
    if sweep:
        rx = fig.add_subplot(grid[row, :])
        lo_f, hi_f = info.freqs[0], info.freqs[1]
        start, length, tail = info.stimulus_start, info.stimulus_length, round(0.1 * rate)
        for c in channels:
            if c.get("error") or c.get("latency_total_samples") is None:
                continue
            lat, src = c["latency_total_samples"], c["source"]
            sign = -1.0 if c.get("inverted") else 1.0
            p = rec.played[start:start + length, src] / fs
            r = sign * rec.recorded[max(start + lat, 0):start + lat + length + tail, c["channel"]] / fs
            f, db = _response_curve(p, r, rate, lo_f, hi_f)
            line, = rx.semilogx(f, db, lw=0.8, label=f"ch{c['channel']}")
            pts = c.get("response_db") or {}
            rx.semilogx([float(k) for k in pts], list(pts.values()), "o", color=line.get_color(), ms=4)
        lo_db, hi_db = rx.get_ylim()
        mid = (lo_db + hi_db) / 2  # at least +-1 dB: a flat path must look flat, not like noise
        rx.set_ylim(min(lo_db, mid - 1), max(hi_db, mid + 1))
        rx.ticklabel_format(axis="y", useOffset=False)
        rx.set(xlabel="Hz", ylabel="dB", title="frequency response (sweep): 1/24 octave, dots at octave points")
        rx.grid(True, which="both", lw=0.3)
        rx.legend(fontsize=8)
    path = Path(path)
    fig.savefig(path)
    return path
