"""Live sources on a board whose I2S clock is off by a known ppm (the virtual board's
`clock_ppm`, a crystal's or a divider's error): a source that writes raw PCM at its own clock
(the host's monotonic clock, 16000 frames a second) into `i2s play -`. Unmatched, the reserve
ahead of the board moves at the clocks' difference (latency grows, or the reserve runs out);
--live holds it within a band and its ratio settles on the ppm that was set. The drift is
made large (thousands of ppm) so that seconds show what a crystal's tens of ppm show in hours."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import numpy as np
import pytest
from conftest import ENV, I2S

RATE = 16000


def _live_play(ppm: int, seconds: float, *args: str, at_ready: float | None = None) -> tuple[dict, int]:
    """`i2s play --json -f S16_LE -r 16000 -c 2 ARGS -` on sim://rp2?clock_ppm=PPM, fed in real
    time for `seconds`, from the start, or with `at_ready` from its settings line on, with that
    many seconds at once first (what a sound server holds): its summary, and the frames written."""
    proc = subprocess.Popen([*I2S, "play", "--json", "-p", f"sim://rp2?clock_ppm={ppm}", "-f", "S16_LE",
                             "-r", str(RATE), "-c", "2", *args, "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, bufsize=0)
    total = int(RATE * seconds)

    def feed():  # a source on its own clock: what is due by now, every 10 ms
        t0, k = time.monotonic(), 0
        while k < total:
            due = min(total, int(((at_ready or 0.0) + time.monotonic() - t0) * RATE))
            if due > k:
                n = np.arange(k, due)
                x = (8000 * np.sin(2 * np.pi * 440 * n / RATE)).astype("<i2")
                proc.stdin.write(np.repeat(x[:, None], 2, axis=1).tobytes())
                k = due
            time.sleep(0.01)

    if at_ready is not None:
        line = proc.stderr.readline()
        assert line.startswith(b"playing stdin"), line
    t = threading.Thread(target=feed, daemon=True)
    t.start()
    t.join(timeout=seconds + 60)  # (what the command says meanwhile, a line a second, fits its pipes)
    out, err = proc.communicate(timeout=60)  # the end of the stream: stdin closed
    assert proc.returncode == 0, err
    return json.loads(out), total


@pytest.mark.slow
def test_unmatched_the_reserve_drifts_at_the_clocks_difference():
    """--no-live: a board 2 % fast takes more than the source gives; the reserve ahead of its
    ring shrinks by about 20 ms a second (at that pace it runs out, and the board with it, in
    a quarter of a minute), which is the drift reported."""
    s, total = _live_play(20000, 4.0, "--no-live", at_ready=0.6)
    live = s["live"]
    assert live["mode"] == "off" and not live["engaged"] and live["resampled_frames"] is None
    assert live["source_frames"] == total == s["frames"]  # every frame, as it came
    print(live)
    assert 14000 < live["drift_ppm"] < 26000  # (a loaded host's scheduling moves a short run's figure)


@pytest.mark.slow
def test_live_holds_the_reserve_and_measures_the_drift():
    """--live on a board 2 % fast: the drift measured is +20000 ppm (within 10 %: a few seconds
    on a loaded host), the reserve stays within a band less than half what the drift would have
    moved it meanwhile, the board never runs dry, and every frame that was not skipped at the
    start is played (resampled: as many as the ratio makes)."""
    ppm, seconds = 20000, 7.5
    s, total = _live_play(ppm, seconds, "--live", "--live-loop", "1s", "--live-max-ppm", "40000")
    live = s["live"]
    print(live)
    assert live["mode"] == "live" and live["engaged"]
    assert live["settled_s"] >= 2 and abs(live["drift_ppm"] - ppm) < 0.1 * ppm
    lo, hi = live["fill_band_ms"]
    settled_s = seconds - 3 * live["loop_s"] - 0.5  # the band's time: from three loop times on, the end left out
    assert hi - lo < 0.5 * ppm * 1e-6 * settled_s * 1000 and lo > 0
    assert s["underruns"] == 0
    assert live["skipped_frames"] + live["source_frames"] == total  # nothing dropped after the start
    assert s["frames"] == live["resampled_frames"]
    assert abs(s["frames"] - live["source_frames"] * (1 + ppm * 1e-6)) < 0.005 * total
