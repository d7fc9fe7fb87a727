"""The virtual board's clock, in real MicroPython: it trails the host's by the waits that are not
the board's, and like any board's clock it never runs back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "i2scli" / "sim" / "runtime"
MICROPYTHON = Path(sys.executable).parent / "micropython"

SCRIPT = """
import sys
sys.path.append(%r)
import _simport as p
import _simtime as t
import utime
a, ms = p.now(), t.ticks_ms()
p.waited(p.host_us() - 50000)  # a model call that began 50 ms ago, counted after the board read its clock
b, ms2 = p.now(), t.ticks_ms()
p.waited(p.host_us())  # nothing more to take: the lag given up stays given up
c = p.now()
print(utime.ticks_diff(b, a) >= 0, utime.ticks_diff(ms2, ms) >= 0, utime.ticks_diff(c, b) >= 0, p.lag < 50000)
"""


def test_the_boards_clock_never_runs_back():
    r = subprocess.run([str(MICROPYTHON), "-c", SCRIPT % str(RUNTIME)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True", "True", "True"]
