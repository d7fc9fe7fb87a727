"""Parsing of the units people type: durations like `1ms`, `250us`, `2s`, `1.5`; numbers that
must be finite; sample rates. As click parameter types, so that every command that takes one
refuses a bad value the same way: click's usage error (exit 2) naming the option."""

from __future__ import annotations

import math
import re

import click

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|µs|ms|s|min)?\s*$")
_SCALE = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, None: 1.0}
MAX_DURATION_S = 1e9  # about 31 years: any longer is a typing accident (or an infinity)


def parse_duration(text: str) -> float:
    """Seconds in `text` (`1ms`, `250us`, `2s`, `1.5` = seconds, `1min`).

    Raises ValueError with a one-line message for anything else, negatives included.
    """
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"invalid duration {text!r} (use a number with us, ms, s or min, e.g. 1ms)")
    seconds = float(m.group(1)) * _SCALE[m.group(2)]
    if seconds > MAX_DURATION_S:  # a number of 309 digits is a float infinity
        raise ValueError(f"invalid duration {text!r}: longer than {MAX_DURATION_S:g} s")
    return seconds


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


class BufferTime(Duration):
    """aplay's `--buffer-time`: a bare number is microseconds (`-B 50000`, as aplay takes it);
    with a unit it is that unit (`50ms`). The value is seconds; at least 1 ms, at most 60 s."""

    name = "buffer_time"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*", value):
            value = value.strip() + "us"
        seconds = super().convert(value, param, ctx)
        if not 0.001 <= seconds <= 60:
            self.fail(f"{value!r} is out of range: a ring of 1 ms to 60 s (a bare number is microseconds, "
                      f"as aplay's)", param, ctx)
        return seconds


BUFFER_TIME = BufferTime()


class Finite(click.FloatRange):
    """A float option that must be a finite number (not nan, inf or -inf), within [min, max]
    if given: a level, gain or frequency that is not a number would play silence or a
    full-scale square, or fail deep inside with a Python error."""

    name = "number"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


FINITE = Finite()

#: dB options (levels, gains, thresholds) stay within this: a 32-bit sample resolves about
#: -186 dBFS, and 10**(dB/20) of a larger magnitude overflows or is 0.
DB_RANGE = 200.0
LEVEL = Finite(min=-DB_RANGE, max=0)  # dBFS of a signal or a threshold: 0 is full scale
GAIN = Finite(min=-DB_RANGE, max=DB_RANGE)

#: The highest sample rate an option takes (Hz). I2S audio rates end at 768 kHz; beyond 1 MHz a
#: rate only overflows the file formats' and the board's integers.
MAX_RATE = 1_000_000
RATE = click.IntRange(1, MAX_RATE)

#: An I2S DMA ring (--ibuf): boards have kilobytes to a few megabytes of RAM.
RING = click.IntRange(64, 1 << 26)
