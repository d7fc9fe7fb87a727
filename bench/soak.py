"""Soak test (bench/soak): continuous record on the virtual board, checked as it streams.

    bench/soak [--minutes 30] [--profile rp2] [--rate 48000] [--load N] [--json FILE]

Records 32-bit stereo from `sim://PROFILE?rx_source=ramp` for the given time through the same
library path `i2s record` uses (session.record), into a checker (i2scli/sim/rampcheck.py) that
holds every frame against the ramp and keeps nothing. Reports each discontinuity of the ramp
(recorded frame, jump in frames: + lost, - repeated) and which counter saw it: the agent's
overrun estimate at that place (`agent`), its count past the 8 places it keeps (`count`),
only the virtual port's own count (`port`), or nothing. Beside it: the model's own count of
the frames its RX ring dropped and of any frame it invented (a model bug), host RSS (sampled
every 5 s; the first 30 s are warm-up), the agent's steady-state heap allocation and the link
counters. `--load N` runs N busy processes beside it (a loaded machine).

Exit 0 when the recording is what it says it is: every frame there, none garbled or repeated,
every loss seen by a counter and equal to what the model dropped, host RSS flat (less than
10 MB growth after warm-up) and no board allocation (heap_alloc 0). Not part of the test suite
(tests/e2e/test_rx_integrity.py runs a short one under load).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from i2scli import audio, session  # noqa: E402
from i2scli.sim.rampcheck import RampCheck, account  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def model_counts(events_path: Path) -> dict:
    """The virtual board's own view of its RX sessions (docs/sim-internals.md events)."""
    out = {"overruns": 0, "overrun_frames": 0, "padded_frames": 0}
    for line in events_path.read_text().splitlines():
        e = json.loads(line)
        if e.get("ev") == "i2s_deinit":
            out["overruns"] += e.get("overruns", 0)
            out["overrun_frames"] += e.get("overrun_frames", 0)
        elif e.get("ev") == "rx_padded":
            out["padded_frames"] += e.get("frames", 0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--profile", default="rp2")
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--load", type=int, default=0, help="busy processes to run beside it")
    ap.add_argument("--json", help="write the report here too")
    a = ap.parse_args()
    bus = audio.BusFormat(a.rate, 32, 2)
    want = int(round(a.minutes * 60 * a.rate))
    check = RampCheck(32, 2)
    samples: list[tuple[float, float]] = []
    done = threading.Event()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.load)]
    tmp = tempfile.TemporaryDirectory(prefix="i2s-soak-")
    events = Path(tmp.name) / "events.jsonl"
    t0 = time.monotonic()

    def sampler():
        while True:
            samples.append((time.monotonic() - t0, rss_mb()))
            if done.wait(5):
                return

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    port = f"sim://{a.profile}?rx_source=ramp&events={events}"
    print(f"soak: recording {a.minutes:g} min of {bus.describe()} from sim://{a.profile}?rx_source=ramp"
          f"{f' beside {a.load} busy processes' if a.load else ''}", file=sys.stderr)
    try:
        with session.board(port) as agent:
            s = session.record(agent, port, check, bus, session.BusOptions(), session.RecordStop(frames=want))
    finally:
        for p in busy:
            p.kill()
            p.wait()
    done.set()
    th.join()
    samples.append((time.monotonic() - t0, rss_mb()))
    elapsed = time.monotonic() - t0
    model = model_counts(events)
    warm = [r for t, r in samples if t >= min(30.0, elapsed / 4)] or [samples[-1][1]]
    growth = warm[-1] - warm[0]
    lost = want - check.frames
    # where the agent can place a loss: the ring (and a payload) before the first frame it hit
    slack = 2 * 16384 // 8  # the default ibuf (session.bus_config) holds 2048 RX frames
    breaks = account(check, s, slack)
    unseen = [b for b in breaks if b["seen_by"] is None]
    ok = (lost == 0 and check.garbled == 0 and check.repeated == 0 and not check.more and not unseen
          and check.skipped == model["overrun_frames"] and model["padded_frames"] == 0
          and growth < 10 and s.get("heap_alloc") == 0 and not (s["crc_errors"] or s["resyncs"] or s["seq_gaps"]))
    for b in breaks:
        print(f"soak: discontinuity at frame {b['frame']} ({b['frame'] / a.rate:.3f} s): "
              f"{'+' if b['jump'] > 0 else ''}{b['jump']} frames, seen by {b['seen_by'] or 'NOTHING'}",
              file=sys.stderr)
    board = s["board"]
    line = (f"soak: {a.profile}, {elapsed:.0f} s, {check.frames} of {want} frames ({lost} lost, "
            f"{check.garbled} garbled); {len(breaks) + check.more} discontinuities ({check.skipped} frames skipped, "
            f"{check.repeated} repeated, {len(unseen)} unseen); overruns {s['overruns']} ({s.get('lost_frames', 0)} "
            f"frames; agent estimate {board.get('overruns', 0)} / {board.get('lost_frames', 0)} frames), model "
            f"dropped {model['overrun_frames']} frames, invented {model['padded_frames']}; crc_errors "
            f"{s['crc_errors']}, resyncs {s['resyncs']}, seq_gaps {s['seq_gaps']}; host RSS {warm[0]:.1f} -> "
            f"{warm[-1]:.1f} MB after warm-up (growth {growth:+.1f} MB); board heap_alloc {s.get('heap_alloc')} B "
            f"over {board.get('heap_frames')} frames; link rate {s['link_rate'] / 1e3:.0f} kB/s; "
            f"{'OK' if ok else 'FAIL'}")
    print(line)
    if a.json:
        Path(a.json).write_text(json.dumps({
            "profile": a.profile, "minutes": a.minutes, "load": a.load, "elapsed_s": elapsed, "frames": check.frames,
            "want": want, "garbled": check.garbled, "discontinuities": breaks, "more": check.more,
            "skipped": check.skipped, "repeated": check.repeated, "overruns": s["overruns"],
            "lost_frames": s.get("lost_frames"), "agent": {k: board.get(k) for k in ("overruns", "lost_frames",
                                                                                      "overrun_at")},
            "model": model, "rss_growth_mb": growth, "heap_alloc": s.get("heap_alloc"), "ok": ok}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
