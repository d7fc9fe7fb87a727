"""Pass/fail limits of `i2s test` and the limits file that sets them."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path


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
