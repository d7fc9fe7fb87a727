"""Pass/fail limits of `i2s test` and the limits file that sets them.

Each limit is a `Limits` field whose `Spec` (field metadata) says how it reaches the user and the
verdict: the command-line option (``--`` and the name with dashes), its help, unit and the
default `i2s test` applies, and the check it makes (``chN.<case>``, the JUnit test case) on which
measure of a channel. `cli/testing.py` makes the options from these fields and `checks.py` the
check lines, so a new check is a measure and a field here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Spec:
    """How one limit reaches the user (the option) and the verdict (the check).

    Attributes
    ----------
    help, metavar : str
        The option's help ("" for none) and value name.
    kind : str
        The option's type: ``"number"`` (finite float), ``"count"`` (int) or ``"duration"``
        (seconds, written ``30ms``, ``2s``).
    nonneg : bool
        The option refuses a negative value.
    default : float or None
        What `i2s test` judges by when neither the limits file nor an option gives the limit.
    case : str or None
        The check's name after ``chN.`` (its JUnit test case); None for a setting.
    measure : str or None
        The channel measure (key of `analyse`'s channel dict) the check compares with the limit;
        None for a check worded on its own (frequency, start).
    minimum : bool
        The measure must be at least the limit (else at most).
    unit : str
        Unit shown after the values in the check line (" dB").
    per : float
        Measure units per limit unit: the measure is divided by it (latency: 1000 ms per s).
    magnitude : bool
        The check compares the measure's absolute value (a signed offset).
    missing_fails : str
        When the measure is missing, the check still runs (and fails): ``""`` never, ``"sine"``
        for a sine, ``"always"``.
    bounds : tuple or None
        (low, high) the limit itself must lie in; a limits file or option outside is refused.
    """

    help: str = ""
    metavar: str = "N"
    kind: str = "number"
    nonneg: bool = False
    default: float | None = None
    case: str | None = None
    measure: str | None = None
    minimum: bool = False
    unit: str = ""
    per: float = 1.0
    magnitude: bool = False
    missing_fails: str = ""
    bounds: tuple[float, float] | None = None


def _limit(**spec: Any) -> Any:
    """A `Limits` field, None (not checked) unless given, described by `Spec(**spec)`."""
    return field(default=None, metadata={"spec": Spec(**spec)})


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
    max_dc_offset : float
        Largest DC offset of the recorded stimulus (``dc``, either sign), a fraction of full
        scale: a biased ADC or a missing coupling capacitor.
    ignore_start : float
        Seconds at the start of the stimulus that the glitch and window-SNR checks leave to the
        ``start`` check (None: IGNORE_START_S, 30 ms). A setting rather than a limit, kept here so
        that one limits file says how a rig is judged.
    max_start_glitches : int
        Glitches allowed in the first `ignore_start` of the stimulus (the ``start`` check).
    allow_swap, allow_inversion : bool
        Whether crossed channels or an inverted polarity pass the wiring check.
    """

    freq_tolerance: float | None = _limit(
        metavar="FRACTION", nonneg=True, default=0.005, case="frequency",
        help="Largest relative frequency error (default 0.005 = 0.5 %).")
    min_snr: float | None = _limit(
        metavar="DB", case="snr", measure="snr_db", minimum=True, unit=" dB", missing_fails="sine")
    max_thd_n: float | None = _limit(
        metavar="DB", case="thd_n", measure="thd_n_db", unit=" dB", missing_fails="sine",
        help="THD+N below the fundamental, e.g. -60.")
    max_latency: float | None = _limit(
        metavar="DUR", kind="duration", case="latency", measure="latency_ms", per=1000, unit=" s",
        help="Path latency, board buffering taken out.")
    max_glitches: int | None = _limit(
        kind="count", nonneg=True, default=0, case="glitches", measure="glitch_count", missing_fails="sine",
        help="Default 0.")
    min_level: float | None = _limit(
        metavar="DBFS", case="min_level", measure="level_dbfs", minimum=True, unit=" dBFS")
    max_level: float | None = _limit(metavar="DBFS", case="max_level", measure="level_dbfs", unit=" dBFS")
    min_window_snr: float | None = _limit(
        metavar="DB", case="window_snr", measure="min_window_snr_db", minimum=True, unit=" dB",
        missing_fails="always", help="Least SNR of any 20 ms window.")
    max_dc_offset: float | None = _limit(
        metavar="FRACTION", nonneg=True, case="dc_offset", measure="dc", magnitude=True, unit=" of full scale",
        bounds=(0, 1), help="Largest DC offset of the recording, a fraction of full scale (0.01 = 1 %).")
    ignore_start: float | None = _limit(
        metavar="DUR", kind="duration", nonneg=True,
        help="Start of the stimulus judged apart, by the start check (default 30ms).")
    max_start_glitches: int | None = _limit(
        kind="count", nonneg=True, case="start",
        help="Glitches allowed in that start (default: reported, not judged).")
    allow_swap: bool = False
    allow_inversion: bool = False

    @classmethod
    def specs(cls) -> dict[str, Spec]:
        """Each limit's `Spec`, by field name, in field order (the options' and the checks' order)."""
        return {f.name: f.metadata["spec"] for f in fields(cls) if "spec" in f.metadata}

    @classmethod
    def run_defaults(cls) -> Limits:
        """The limits `i2s test` judges by without a limits file: each `Spec.default`."""
        return cls(**{k: s.default for k, s in cls.specs().items() if s.default is not None})

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

        for name, spec in self.specs().items():
            v = getattr(self, name)
            if spec.bounds is not None and v is not None:
                lo, hi = spec.bounds
                bad(not lo <= v <= hi, f"{name} must be between {lo:g} and {hi:g}, not {v}")

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
