"""Soak test (bench/soak): continuous record on the virtual board, checked as it streams.

    bench/soak [--minutes 30] [--profile fast] [--rate 48000]

Records 32-bit stereo from `sim://PROFILE?rx_source=ramp` for the given time through the same
library path `i2s record` uses (session.record), with an output that checks every frame
against the ramp (docs/sim.md) and keeps nothing. Prints a summary: frames, lost or wrong
frames, host RSS (sampled every 5 s; the first 30 s are warm-up), the agent's steady-state
heap allocation, link counters. Exit 0 when no sample was lost or wrong, the host RSS stayed
flat (less than 10 MB growth after warm-up) and the board allocated nothing (heap_alloc 0).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from i2scli import audio, session  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RampCheck:
    """An audio.Output look-alike: checks 32-bit stereo ramp continuity, stores nothing."""

    path = "(ramp check)"
    subtype = "PCM_32"
    format = "none"

    def __init__(self):
        self.frames = 0
        self.next_slot: int | None = None
        self.bad = 0  # frames that are not the next ramp frame
        self.first_bad: int | None = None
        self.tail = b""

    def write(self, data: bytes) -> None:
        data = self.tail + data
        usable = len(data) // 8 * 8
        self.tail = data[usable:]
        x = np.frombuffer(data[:usable], "<i4").reshape(-1, 2).astype(np.int64)
        if not len(x):
            return
        n = (x >> 8) & 0xFFFFFF
        if self.next_slot is None:
            self.next_slot = int(n[0, 0])
        want = (self.next_slot + 2 * np.arange(len(x))) % 2**24
        wrong = (n[:, 0] != want) | (n[:, 1] != (want + 1) % 2**24)
        if wrong.any():
            self.bad += int(wrong.sum())
            if self.first_bad is None:
                self.first_bad = self.frames + int(np.flatnonzero(wrong)[0])
        self.next_slot = int((n[-1, 0] + 2) % 2**24)  # resync on what came, count the damage once
        self.frames += len(x)

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--profile", default="fast")
    ap.add_argument("--rate", type=int, default=48000)
    a = ap.parse_args()
    bus = audio.BusFormat(a.rate, 32, 2)
    want = int(round(a.minutes * 60 * a.rate))
    out = RampCheck()
    samples: list[tuple[float, float]] = []
    done = threading.Event()
    t0 = time.monotonic()

    def sampler():
        while True:
            samples.append((time.monotonic() - t0, rss_mb()))
            if done.wait(5):
                return

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    port = f"sim://{a.profile}?rx_source=ramp"
    print(f"soak: recording {a.minutes:g} min of {bus.describe()} from {port}", file=sys.stderr)
    with session.board(port) as agent:
        s = session.record(agent, port, out, bus, session.BusOptions(), session.RecordStop(frames=want))
    done.set()
    th.join()
    samples.append((time.monotonic() - t0, rss_mb()))
    elapsed = time.monotonic() - t0
    warm = [r for t, r in samples if t >= min(30.0, elapsed / 4)] or [samples[-1][1]]
    growth = warm[-1] - warm[0]
    lost = want - out.frames
    ok = lost == 0 and out.bad == 0 and growth < 10 and s.get("heap_alloc") == 0 and not s["overruns"] \
        and not (s["crc_errors"] or s["resyncs"] or s["seq_gaps"])
    print(f"soak: {elapsed:.0f} s, {out.frames} of {want} frames ({lost} lost, {out.bad} wrong"
          f"{'' if out.first_bad is None else f', first at frame {out.first_bad}'}); "
          f"overruns {s['overruns']}, crc_errors {s['crc_errors']}, resyncs {s['resyncs']}, seq_gaps {s['seq_gaps']}; "
          f"host RSS {warm[0]:.1f} -> {warm[-1]:.1f} MB after warm-up (max {max(r for _, r in samples):.1f}, "
          f"growth {growth:+.1f} MB); board heap_alloc {s.get('heap_alloc')} B over {s['board'].get('heap_frames')} "
          f"frames ({s['board'].get('heap_method')}); link rate {s['link_rate'] / 1e3:.0f} kB/s; "
          f"{'OK' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
