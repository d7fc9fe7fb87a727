"""Time to first sample for a pipe: from the first byte written into `i2s play -` to the first
sample on the virtual board's SD pin.

    .venv/bin/python bench/pipe_latency.py [--profile fast] [--rate 48000]

Each case runs `i2s sim` in its own process (TX capture and events) and `i2s play -q -p DEV -`
fed by this script through a real pipe:

- `at once, N s`: a WAV of N seconds written as fast as the pipe takes it, from the moment
  `i2s` starts (as `sox ... | i2s play -` does); the time includes making the board ready.
- `late`: the same, but the first byte is written 4 s after `i2s` started (the board is ready
  by then): what a source that starts late (or a live one) waits for.
- `live`: 6 s written in real time (a microphone's pace), from the moment `i2s` starts.

The first sample's time is the TX session's start (`i2s_init` `t_us`) plus the zeros the capture
holds before the first sample, at the bus rate (the audio never starts with a zero frame). `t_us`
is the board's clock, which trails the host's monotonic clock (this script's) by the time the
board's process waited for a CPU, at most 250 ms (docs/sim.md, *clock*): the figure is a lower
bound, and 250 ms more an upper one. On a loaded two-core machine the lag is near its maximum.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

I2S = [sys.executable, "-m", "i2scli"]
LAG_MAX_S = 0.25  # the board's clock trails the host's by up to this (docs/sim.md, i2scli/sim/board.py)


def header(rate: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 2, rate, rate * 4, 4, 16)
    return b"RIFF" + b"\xff" * 4 + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + b"\xff" * 4


def audio(k: int, n: int) -> bytes:
    i = np.arange(k, k + n, dtype=np.int64)
    return np.stack([i % 30000 + 1, -(i % 20000) - 1], axis=1).astype("<i2").tobytes()


def run(profile: str, rate: int, seconds: float, delay: float, paced: bool, work: Path) -> float:
    cap, ev = work / "tx.wav", work / "ev.jsonl"
    sim = subprocess.Popen([*I2S, "sim", "--profile", profile, "--tx-capture", str(cap), "--events", str(ev)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dev = sim.stdout.readline().strip()
    play = subprocess.Popen([*I2S, "play", "-q", "-p", dev, "-"], stdin=subprocess.PIPE, bufsize=0)
    time.sleep(delay)
    first = time.monotonic()
    play.stdin.write(header(rate))
    block = rate // 50
    for k in range(0, int(seconds * rate), block):
        if paced:
            time.sleep(max(0.0, first + k / rate - time.monotonic()))
        play.stdin.write(audio(k, block))
    play.stdin.close()
    play.wait(timeout=seconds + 120)
    sim.send_signal(2)
    sim.communicate(timeout=30)
    events = [json.loads(line) for line in ev.read_text().splitlines()]
    tx = next(e for e in events if e["ev"] == "i2s_init" and e["mode"] == "tx")
    c = sf.read(str(cap), dtype="int16", always_2d=True)[0]
    on_pins = tx["t_us"] / 1e6 + np.flatnonzero(c.any(axis=1))[0] / rate
    return on_pins - first


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="fast")
    ap.add_argument("--rate", type=int, default=48000)
    a = ap.parse_args()
    cases = [("at once, 5 s", 5, 0.0, False), ("at once, 60 s", 60, 0.0, False), ("late (4 s), 5 s", 5, 4.0, False),
             ("late (4 s), 60 s", 60, 4.0, False), ("live, 6 s", 6, 0.0, True), ("live, late (4 s)", 6, 4.0, True)]
    print(f"| {a.profile}, {a.rate} Hz 16-bit stereo | first byte to first sample on SD (board clock) "
          f"| at most (+ the board clock's lag) |")
    print("|---|---|---|")
    for name, seconds, delay, paced in cases:
        with tempfile.TemporaryDirectory() as d:
            t = run(a.profile, a.rate, seconds, delay, paced, Path(d))
        print(f"| {name} | {t * 1000:.0f} ms | {(t + LAG_MAX_S) * 1000:.0f} ms |", flush=True)


if __name__ == "__main__":
    main()
