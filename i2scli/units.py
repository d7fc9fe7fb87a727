"""Parsing of the units people type: durations like `1ms`, `250us`, `2s`, `1.5`."""

from __future__ import annotations

import re

import click

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|µs|ms|s|min)?\s*$")
_SCALE = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds in `text` (`1ms`, `250us`, `2s`, `1.5` = seconds, `1min`).

    Raises ValueError with a one-line message for anything else, negatives included.
    """
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"invalid duration {text!r} (use a number with us, ms, s or min, e.g. 1ms)")
    return float(m.group(1)) * _SCALE[m.group(2)]


class Duration(click.ParamType):
    """click parameter type for durations; the value is seconds (float)."""

    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            if value < 0:
                self.fail(f"invalid duration {value!r}: must not be negative", param, ctx)
            return float(value)
        try:
            return parse_duration(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


DURATION = Duration()
