"""The agent's heap meter (firmware/i2s_meter.py Heap) in the MicroPython unix port: where it
counts with gc.mem_alloc() it holds collection off, and lets it run again past 4096 bytes, so a
port that allocates per frame (rp2: a CRC above 2**30 is a big int) does not run out of heap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

MICROPYTHON = Path(sys.executable).parent / "micropython"
FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"

SCRIPT = """
import sys, gc
sys.path.insert(0, {firmware!r})
from i2s_meter import Heap
h = Heap()
h.method = "mem_alloc"  # as on a port without micropython.mem_total
h.total = gc.mem_alloc
keep = []
h.start()
keep.append(bytearray(1000))
h.mark()
print(h.on, gc.isenabled())
keep.append(bytearray(4000))
h.mark()
print(h.on, gc.isenabled(), h.bytes > 4096)
h.stop()
print(h.on, gc.isenabled(), h.bytes > 4096)
"""


def test_a_mem_alloc_window_lets_collection_run_again_past_4096_bytes():
    if not MICROPYTHON.exists():
        pytest.skip("no MicroPython unix port in the venv")
    r = subprocess.run([str(MICROPYTHON), "-c", SCRIPT.format(firmware=str(FIRMWARE))], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # under the cap: counting, collection off; past it: closed, collection on, the count kept
    assert r.stdout.splitlines() == ["True False", "False True True", "False True True"], r.stdout
