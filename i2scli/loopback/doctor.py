"""`i2s doctor`: what is wired wrong on the RX side of the bus, and the board's real sample rate.

A recording in 32-bit stereo (both slots, every bit the bus carries) is measured slot by slot
(`slot_report`): whether anything answers on it, its level and noise floor, which bits carry
audio (and which low bits carry junk), DC offset, stuck and constant bits, clipping. `diagnose`
joins the two slots into a report: which slot the microphone answers on, the recording settings
that suit it, and findings in plain sentences that hold the settings they advise as data (the
command line names them by its flags: cli/doctor.py). `fit_rate` measures the board's I2S clock
against the host's: frames delivered against the host's monotonic clock. How each is measured
and the thresholds: docs/doctor.md.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

FULL_SCALE = 2.0 ** 31
#: a slot is silent (nothing answers) below this AC RMS level
SIGNAL_DBFS = -130.0
#: a DC offset at or above this level is reported (about 900 counts of a 24-bit mic)
DC_DBFS = -80.0
#: random bits on every position at about this RMS (a uniform 32-bit value: -4.77 dBFS) = a floating line
RANDOM_DBFS = -10.0
#: bit widths microphones send (an odd one less than these is read one bit early: SPH0645)
MIC_WIDTHS = (16, 18, 20, 24, 32)
#: the windows the noise floor is looked for in
WINDOW_S = 0.020
#: the RX ring doctor asks for when no ring size is given (4096 frames of 32-bit stereo)
IBUF = 32768


def _dbfs(x: float) -> float | None:
    return round(20 * math.log10(x / FULL_SCALE), 2) if x > 0 else None


def _ctz(v: int) -> int:
    """Trailing zero bits of a non-zero 32-bit value."""
    return (v & -v).bit_length() - 1


@dataclass
class SlotReport:
    """What one slot carries. Bits are numbered 0 (LSB) to 31 (MSB) of the 32-bit slot."""

    state: str  # "signal", "zero" (all 0), "constant" (one value), "random" (floating line), "silent"
    frames: int
    level_dbfs: float | None = None  # AC RMS
    peak_dbfs: float | None = None
    noise_floor_dbfs: float | None = None  # the quietest 20 ms window's AC RMS
    dc: float = 0.0  # mean, in 32-bit counts
    dc_dbfs: float | None = None
    constant_value: int | None = None
    lowest_bit: int | None = None  # the lowest bit that ever changes
    significant_bits: int = 0  # bits that carry audio, from the MSB down
    junk_low_bits: int = 0  # bits below them that change but carry no audio
    zero_low_bits: int = 0  # bits below those that are always 0
    one_bit_offset: bool = False  # an odd width one less than a microphone's: read one bit early
    stuck_high: list[int] = field(default_factory=list)  # bits among the audio bits always 1
    stuck_low: list[int] = field(default_factory=list)  # ... always 0
    clipped: int = 0  # samples at the full scale of the audio bits
    dropouts: int = 0  # 20 ms windows all zero in a slot that otherwise carries a signal
    junk_values: list[int] = field(default_factory=list)  # what the junk bits were (masked values)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["dc"] = round(self.dc, 1)
        return d


def slot_report(x: np.ndarray, rate: int) -> SlotReport:
    """Measure one slot of a 32-bit recording (`x`: int32 samples of the slot, in order)."""
    x = np.asarray(x, np.int32)
    n = len(x)
    if n == 0:
        return SlotReport("silent", 0)
    u = x.view(np.uint32)
    if not u.any():
        return SlotReport("zero", n)
    changed = int(np.bitwise_or.reduce(u ^ u[0]))
    if changed == 0:
        v = int(x[0])
        return SlotReport("constant", n, dc=float(v), dc_dbfs=_dbfs(abs(v)), constant_value=v)
    xf = x.astype(np.float64)
    dc = float(xf.mean())
    ac = xf - dc
    rms = float(np.sqrt(np.mean(ac * ac)))
    peak = float(np.abs(xf).max())
    lo = _ctz(changed)
    r = SlotReport("signal", n, level_dbfs=_dbfs(rms), peak_dbfs=_dbfs(peak), dc=dc,
                   dc_dbfs=_dbfs(abs(dc)), lowest_bit=lo)
    win = max(1, int(rate * WINDOW_S))
    if n >= 2 * win:
        raw = x[: n // win * win].reshape(-1, win)
        dead = ~raw.any(axis=1)  # windows of exact zeros: the line, not the room
        r.dropouts = int(dead.sum()) if not dead.all() else 0
        w = xf[: n // win * win].reshape(-1, win)[~dead]
        w = w - w.mean(axis=1, keepdims=True)
        r.noise_floor_dbfs = _dbfs(float(np.sqrt(np.mean(w * w, axis=1)).min())) if len(w) else None
    else:
        r.noise_floor_dbfs = r.level_dbfs
    if lo == 0 and rms > FULL_SCALE * 10 ** (RANDOM_DBFS / 20) and abs(_lag1(ac)) < 0.1:
        r.state = "random"
        r.significant_bits = 32
        return r
    if rms < FULL_SCALE * 10 ** (SIGNAL_DBFS / 20):
        r.state = "silent"
    # junk: the bits from `lo` up to a boundary d take at most two patterns together (ICS-43432:
    # the low byte is 0x00 or 0xC0), two bits at least, while the bits above them carry audio
    d = _junk_boundary(u, lo)
    r.junk_low_bits = d - lo
    r.zero_low_bits = lo
    r.significant_bits = 32 - d
    if r.junk_low_bits:
        r.junk_values = sorted(int(v) for v in np.unique(u & np.uint32((1 << d) - 1)))
    r.one_bit_offset = r.significant_bits + 1 in MIC_WIDTHS[:-1] and r.significant_bits not in MIC_WIDTHS
    # stuck bits: among the audio bits up to the highest one the signal reaches (the rest are sign)
    sign = (u >> np.uint32(31)).astype(bool)
    mag = np.where(sign, ~u, u)  # bits that differ from the sign bit
    top = int(np.bitwise_or.reduce(mag)).bit_length()  # bits [top, 31] are sign
    ors = int(np.bitwise_or.reduce(u))
    ands = int(np.bitwise_and.reduce(u))
    for b in range(d, min(top, 31)):
        if ands >> b & 1:
            r.stuck_high.append(b)
        elif not ors >> b & 1:
            r.stuck_low.append(b)
    # clipping: samples at the ends of what the audio bits can say
    step = 1 << (d + (1 if r.one_bit_offset else 0))
    hi = (2 ** 31 - 1) // step * step
    lo_fs = -(2 ** 31)
    r.clipped = int(np.count_nonzero((x >= hi) | (x <= lo_fs)))
    return r


def _lag1(ac: np.ndarray) -> float:
    den = float(np.dot(ac, ac))
    return float(np.dot(ac[1:], ac[:-1]) / den) if den > 0 else 0.0


def _junk_boundary(u: np.ndarray, lo: int) -> int:
    """The lowest bit of the audio: `lo`, or higher when bits lo..d-1 (d - lo >= 2) only ever
    take at most two patterns together: junk, not the low end of a noise floor."""
    best = lo
    for d in range(lo + 2, min(lo + 12, 31)):
        if len(np.unique(u & np.uint32(((1 << d) - 1) ^ ((1 << lo) - 1)))) <= 2:
            best = d
        else:
            break
    return best


# -- the sample rate ------------------------------------------------------------------------------
class ArrivalLog:
    """An audio.Output-like sink for session.record that keeps the samples in memory."""

    pipe = None  # no reader to fall behind or go away (audio.Output's, for a pipe)
    reader_gone = False

    def __init__(self, bus):
        self.bus = bus
        self.path = "(doctor)"
        self.subtype = "PCM_32"
        self.format = "memory"
        self.chunks: list[bytes] = []
        self.frames = 0

    def write(self, data) -> None:
        data = bytes(data)
        self.chunks.append(data)
        self.frames += len(data) // self.bus.frame_bytes

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass

    def samples(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.chunks), "<i4").reshape(-1, self.bus.channels)


def _line(n: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    """Least squares t = a + slope * n: the slope and the residuals."""
    nc = n - n.mean()
    tc = t - t.mean()
    slope = float(np.dot(nc, tc)) / float(np.dot(nc, nc))
    return slope, tc - slope * nc


def fit_rate(times, counts, nominal: int, skip_s: float = 1.0, segment_s: float = 0.1) -> dict:
    """The rate frames arrived at, against the host's clock. Each point is a DATA frame's
    arrival (host monotonic time) and the frames delivered with it so far. A frame is never
    early but often late (the host, the link, the board busy), so the line is fitted to the
    earliest arrivals: in each `segment_s` of the run, the point earliest against the nominal
    rate, then a least-squares line through those (the first `skip_s` left out: the start-up
    burst of what the board had buffered, and the host's own start). The uncertainty is twice
    the slope's standard error (about 95 %), widened for residuals that are not independent
    (their lag-1 correlation), or the jackknife's over ten blocks of the run where that is
    larger, with twice the minima's robust scatter over the span added in quadrature (the
    floor of the arrivals wanders too); minima over 3 robust sigmas late (a stalled segment)
    are left out. An overrun
    (frames lost on the board) bends the line: the report says how many there were.
    Returns rate_hz, rate_ppm, rate_ppm_uncertainty (None when there are too few points)."""
    t = np.asarray(times, np.float64)
    n = np.asarray(counts, np.float64)
    out = {"rate_hz": None, "rate_ppm": None, "rate_ppm_uncertainty": None, "rate_points": 0,
           "rate_span_s": None}
    if len(t) < 8:
        return out
    keep = t >= t[0] + skip_s
    t, n = t[keep], n[keep]
    if len(t) < 8 or t[-1] - t[0] <= 2 * segment_s:
        return out
    lead = t - n / nominal  # arrival less the nominal clock: lowest = least late
    seg = ((t - t[0]) / segment_s).astype(np.int64)
    first = np.r_[0, np.flatnonzero(np.diff(seg)) + 1]
    picks = np.array([i + int(np.argmin(lead[i:j])) for i, j in zip(first, np.r_[first[1:], len(t)])])
    if len(picks) < 4:
        return out
    tp, np_ = t[picks], n[picks]
    # a whole segment can be late (the host stalled through it): leave out minima more than
    # 3 robust sigmas above the line, and fit again, until none is
    keep = np.ones(len(tp), bool)
    for _ in range(5):
        slope, _ = _line(np_[keep], tp[keep])
        res = tp - slope * np_
        res -= np.median(res[keep])
        mad = 1.4826 * float(np.median(np.abs(res[keep]))) or 1e-9
        new = res <= 3 * mad
        if new.sum() < 6 or np.array_equal(new, keep):
            break
        keep = new
    tp, np_ = tp[keep], np_[keep]
    slope, res = _line(np_, tp)
    nc = np_ - np_.mean()
    sxx = float(np.dot(nc, nc))
    s2 = float(np.dot(res, res)) / (len(tp) - 2)
    rho = min(max(_lag1(res), 0.0), 0.95) if len(res) > 2 else 0.0
    se = math.sqrt(s2 / sxx) * math.sqrt((1 + rho) / (1 - rho))
    # and a jackknife over ten blocks of the run, which heavy tails and steps do not fool
    k = 10
    blocks = np.array_split(np.arange(len(tp)), k)
    if all(len(bl) for bl in blocks):
        slopes = np.array([_line(np.delete(np_, bl), np.delete(tp, bl))[0] for bl in blocks])
        se = max(se, math.sqrt((k - 1) / k * float(np.sum((slopes - slopes.mean()) ** 2))))
    rate = 1 / slope
    # the floor itself wanders (by about its own scatter) between the run's ends: a slope of
    # twice that scatter over the span is added, in quadrature
    floor = 1.4826 * float(np.median(np.abs(res - np.median(res))))
    span = float(tp[-1] - tp[0])
    unc = math.hypot(2 * se / slope, 2 * floor / span) * 1e6
    return {"rate_hz": round(rate, 3), "rate_ppm": round((rate / nominal - 1) * 1e6, 1),
            "rate_ppm_uncertainty": round(unc, 1), "rate_ppm_fit": round(2 * se / slope * 1e6, 1),
            "rate_ppm_floor": round(2 * floor / span * 1e6, 1), "rate_points": int(len(tp)),
            "rate_span_s": round(float(tp[-1] - tp[0]), 3)}


class TimedAgent:
    """An Agent whose record() notes, for every DATA frame, the host's monotonic time it
    arrived at and the frames delivered so far (`times`, `counts`): what fit_rate fits."""

    def __init__(self, agent, frame_bytes: int):
        self._agent = agent
        self._fb = frame_bytes
        self.times: list[float] = []
        self.counts: list[int] = []

    def __getattr__(self, name):
        return getattr(self._agent, name)

    def record(self, cfg, on_data, stop=None):
        total = [0]
        now = time.monotonic

        def timed(data):
            self.times.append(now())
            total[0] += len(data)
            self.counts.append(total[0] // self._fb)
            on_data(data)

        return self._agent.record(cfg, timed, stop)


# -- the report -----------------------------------------------------------------------------------
CHANGE = "{change}"  # where a finding's text names the setting it advises


def plain_name(kind: str, value: object) -> str:
    """A setting named in plain words (the command line names them by its flags: cli/doctor.py)."""
    return {"slot": "the right slot kept", "shift": f"I2S.shift(shift={value})",
            "subtype": f"{value} files", "sd": "I2S(sd=...)"}[kind]


@dataclass(frozen=True)
class Finding:
    """One sentence of advice. `change`: the setting it names at CHANGE in `text`, as (kind, value):
    ("slot", "right"), ("shift", -1), ("subtype", "PCM_24"), ("sd", None); `problem`: counted as wrong."""

    text: str
    change: tuple[str, object] | None = None
    problem: bool = True

    def say(self, name: Callable[[str, object], str] = plain_name) -> str:
        return self.text if self.change is None else self.text.replace(CHANGE, name(*self.change))


@dataclass(frozen=True)
class RecordSettings:
    """How to record the microphone: its bits (16 for a 16-bit part without junk), one channel
    (the right slot kept for a right-slot mic) or two, a shift back for a one-bit offset, and
    24-bit files (PCM_24) for up to 24 audio bits."""

    rate: int
    bits: int
    channels: int
    slot: str | None = None  # "right": the right slot of one channel
    shift: int = 0
    subtype: str | None = None

    def describe(self) -> str:
        parts = [f"{self.rate} Hz {self.bits}-bit {'stereo' if self.channels == 2 else 'mono'}"]
        if self.slot:
            parts.append(f"the {self.slot} slot")
        if self.shift:
            parts.append(f"shifted by {self.shift} bit")
        if self.subtype:
            parts.append(f"{self.subtype} files")
        return ", ".join(parts)


def record_settings(slot: str | None, r: SlotReport, rate: int, stereo: bool = False) -> RecordSettings:
    bits = 16 if r.significant_bits <= 16 and not r.one_bit_offset and not r.junk_low_bits else 32
    pcm24 = (r.significant_bits > 16 or r.one_bit_offset) and _bits_of(r) <= 24
    return RecordSettings(rate, bits, 2 if stereo else 1, slot="right" if slot == "right" and not stereo else None,
                          shift=-1 if r.one_bit_offset else 0, subtype="PCM_24" if pcm24 else None)


def _bits_of(r: SlotReport) -> int:
    return r.significant_bits + (1 if r.one_bit_offset else 0)


def diagnose(samples: np.ndarray, rate: int, rate_fit: dict | None = None) -> dict:
    """The doctor's report on a 32-bit stereo recording (`samples`: int32, shape (frames, 2)):
    `rx` (JSON-able), `ok` (nothing wrong), `findings` (a Finding per sentence of advice, most
    important first) and `record` (the RecordSettings that suit the microphone; None: none answers)."""
    rate_fit = rate_fit or {}
    slots = {name: slot_report(samples[:, i], rate) for i, name in enumerate(("left", "right"))}
    active = [k for k, r in slots.items() if r.state == "signal"]
    active_slot = {0: "none", 2: "both"}.get(len(active), active[0] if active else "none")
    main = slots[active[0]] if active else None
    findings: list[Finding] = []

    def say(text: str, problem: bool = True, change: tuple[str, object] | None = None) -> None:
        findings.append(Finding(text, change, problem))

    if not active:
        bad = {k: r for k, r in slots.items()}
        what = []
        for k, r in bad.items():
            if r.state == "zero":
                what.append(f"the {k} slot is all zeros")
            elif r.state == "constant":
                what.append(f"the {k} slot is stuck at one value ({r.constant_value & 0xFFFFFFFF:#010x})")
            elif r.state == "random":
                what.append(f"the {k} slot is random bits")
            else:
                what.append(f"the {k} slot is silent")
        hint, change = _dead_hint(slots)
        say("No microphone answers: " + ", ".join(what) + ". " + hint, change=change)
    else:
        for k, r in slots.items():
            if r.state == "random":
                say(f"The {k} slot carries random bits: a floating SD line or a microphone whose L/R pin "
                    f"floats; tie L/R to GND (left) or VDD (right).")
            elif r.state == "constant" and k not in active:
                say(f"The {k} slot is stuck at {r.constant_value & 0xFFFFFFFF:#010x}: something drives SD there "
                    f"(a second device on the line, or SD pulled high).")
        if active_slot == "right":
            say("The microphone answers on the right slot (its L/R pin is high); MicroPython's MONO keeps "
                "the left slot, so a mono recording is all zeros. Record with " + CHANGE + ", or tie L/R to GND.",
                change=("slot", "right"))
        for k in active:
            r = slots[k]
            if r.one_bit_offset:
                say(f"The {k} slot has {r.significant_bits} audio bits, one less than a {_bits_of(r)}-bit "
                    f"microphone: its samples are doubled (read one bit early, as SPH0645 parts are). "
                    f"Shift them back with {CHANGE}.", change=("shift", -1))
            if r.junk_low_bits:
                vals = ", ".join(f"{v:#04x}" for v in r.junk_values[:4])
                say(f"The {k} slot's low {32 - r.significant_bits} bits carry no audio but are not zero "
                    f"(only {vals}, as ICS-43432 parts send): keep the top {r.significant_bits} bits "
                    f"({CHANGE}) or mask them.", change=("subtype", "PCM_24"))
            if r.stuck_high or r.stuck_low:
                say(f"The {k} slot has stuck bits: " + ", ".join(
                    [f"bit {b} always 1" for b in r.stuck_high] + [f"bit {b} always 0" for b in r.stuck_low])
                    + " (a short on SD, or a wrong slot width).")
            if r.dc_dbfs is not None and r.dc_dbfs >= DC_DBFS:
                counts24 = r.dc / 256
                say(f"The {k} slot has a DC offset of {r.dc_dbfs:.1f} dBFS ({counts24:+.0f} counts of 24 bits): "
                    f"some microphones have one; take it out with a high-pass filter before measuring levels.")
            if r.dropouts:
                say(f"The {k} slot goes silent now and then ({r.dropouts} of its 20 ms windows are all zeros): "
                    f"a microphone whose L/R pin floats hops between the slots, or SD has a loose contact. "
                    f"Tie L/R to GND (left) or VDD (right).")
            if r.clipped:
                say(f"The {k} slot clips: {r.clipped} samples at full scale. Lower the gain or the sound.")
        if active_slot == "both" and np.array_equal(samples[:, 0], samples[:, 1]):
            say("Both slots carry the same samples: one microphone on both, or two with their L/R pins "
                "tied together.", problem=False)
    ppm = rate_fit.get("rate_ppm")
    unc = rate_fit.get("rate_ppm_uncertainty")
    if ppm is not None and unc is not None and abs(ppm) > max(1000.0, 2 * unc):
        say(f"The board's sample rate is {rate_fit['rate_hz']:.1f} Hz, {ppm:+.0f} ppm off {rate} Hz: its "
            f"clock divider cannot make this rate exactly; expect recordings to drift against other clocks.")
    stereo = len(active) == 2 and not np.array_equal(samples[:, 0], samples[:, 1])
    return {
        "rx": {
            "active_slot": active_slot,
            "significant_bits": _bits_of(main) if main else 0,
            "junk_low_bits": main.junk_low_bits if main else 0,
            "dc_dbfs": main.dc_dbfs if main else None,
            "noise_floor_dbfs": main.noise_floor_dbfs if main else None,
            "rate_ppm": rate_fit.get("rate_ppm"),
            "rate_ppm_uncertainty": rate_fit.get("rate_ppm_uncertainty"),
            "rate_hz": rate_fit.get("rate_hz"),
            "slots": {k: r.to_dict() for k, r in slots.items()},
        },
        "record": record_settings(active[0], main, rate, stereo) if main else None,
        "ok": not any(f.problem for f in findings),
        "findings": findings,
    }


def _dead_hint(slots: dict[str, SlotReport]) -> tuple[str, tuple[str, object] | None]:
    states = {r.state for r in slots.values()}
    if states == {"zero"}:
        return ("SD reads 0 all the time: check the SD wire, the microphone's power and that SCK and WS reach it "
                "(a microphone without a clock sends nothing)."), None
    if "constant" in states:
        return f"SD is held at one level: a short to VDD or GND, or the wrong pin given with {CHANGE}.", ("sd", None)
    if "random" in states:
        return "SD floats: the microphone is not driving it (no power, no clock, or the wrong pin).", None
    return "Check the wiring and the microphone's power.", None
