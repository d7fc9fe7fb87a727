"""A recording is what it says it is: every gap, repeat or stale block in the RX
stream shows up in a counter.

The cause of the silent 4 KiB discontinuity: when the board fell behind its bus for longer
than its RX ring lasts (a stalled board CPU; on the virtual board, a descheduled MicroPython
process), the port dropped frames, and the agent's clock-based overrun estimate, checked
after each read against the whole ring, could not see a loss smaller than the payload the
read had just taken plus 5 ms: up to 752 frames at 48 kHz 32-bit stereo. These tests stall
the board (SIGSTOP of the MicroPython process: its I2S clock runs on) and hold the recording
against the ramp it carries, the model's own count of the frames its ring dropped, and the
agent's estimate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from i2scli import audio, session
from i2scli.sim.board import VirtualBoard
from i2scli.sim.rampcheck import RampCheck, account
from i2scli.sim.wire import ramp_samples

RATE = 48000
BUS = audio.BusFormat(RATE, 32, 2)
SLACK = 512 + 2048  # a payload and the ring: where the agent can place a loss (see RxMeter)


def ramp_bytes(start: int, frames: int, bits: int = 32, channels: int = 2) -> bytes:
    return ramp_samples(start, frames, bits, channels).tobytes()


# -- the checker, against streams with known damage -----------------------------------------------
@pytest.mark.parametrize("bits,channels", [(32, 2), (32, 1), (16, 2), (16, 1)])
def test_ramp_check_places_each_break(bits, channels):
    c = RampCheck(bits, channels)
    parts = [ramp_bytes(100, 1000, bits, channels),  # a clean start (any first frame)
             ramp_bytes(1100 + 300, 700, bits, channels),  # 300 frames lost
             ramp_bytes(2100 - 200, 500, bits, channels),  # 200 frames again (a repeat), then on
             ramp_bytes(2400 + 50, 333, bits, channels)]  # 50 lost
    data = b"".join(parts)
    for i in range(0, len(data), 997):  # chunks that split frames
        c.write(data[i:i + 997])
    assert c.frames == 2533 and c.garbled == 0
    assert [(d.frame, d.jump) for d in c.discontinuities] == [(1000, 300), (1700, -200), (2200, 50)]
    assert c.skipped == 350 and c.repeated == 200 and not c.clean


def test_ramp_check_stale_block_and_garbage():
    c = RampCheck(32, 2)
    good = ramp_samples(0, 4 * 512, 32, 2)
    stale = good.copy()
    stale[1024:1536] = good[0:512]  # the third of four blocks is the first one again
    c.write(stale.tobytes())
    assert [(d.frame, d.jump) for d in c.discontinuities] == [(1024, -1024), (1536, 1024)]
    c2 = RampCheck(32, 2)
    bad = good.copy()
    bad[10, 1] = 0  # a right slot that is no ramp
    c2.write(bad.tobytes())
    assert c2.garbled == 1 and not c2.discontinuities


def test_ramp_check_clean_across_the_wrap():
    # 32-bit slots carry 24 bits: the ramp wraps every 2**23 frames
    c = RampCheck(32, 2)
    start = 2**23 - 1000
    c.write(ramp_bytes(start, 3000))
    assert c.clean and c.frames == 3000


# -- the board, stalled while it records ------------------------------------------------------------
def record_with_hangs(profile: str, seconds: float, hangs: list[tuple[float, float]], **kw):
    """Record `seconds` of the ramp while the board hangs at (at, for) moments after the stream
    started; returns (check, summary, board stats)."""
    with VirtualBoard(profile, rx_source="ramp", **kw) as board:
        check = RampCheck()
        started = threading.Event()

        def hang():
            started.wait(30)
            t0 = time.monotonic()
            for at, dur in hangs:
                time.sleep(max(0.0, t0 + at - time.monotonic()))
                board.hang(dur)

        th = threading.Thread(target=hang, daemon=True)
        th.start()
        with session.board(board.path) as agent:
            # the 16 KiB ring the hangs are sized against (the default ring is sized by time)
            s = session.record(agent, board.path, check, BUS, session.BusOptions(ibuf=16384),
                               session.RecordStop(frames=int(seconds * RATE)),
                               on_ready=lambda cfg: started.set())
        th.join(5)
        board.stop()
        return check, s, board.stats


@pytest.mark.slow
def test_board_hangs_lose_frames_and_every_loss_is_counted():
    """Three hangs longer than the 42.7 ms the RX ring lasts (ibuf 16384 = 2048 frames):
    the ring drops what it cannot hold; the recording keeps its length, the ramp jumps, and
    each jump is counted by the agent at its place, with the frames it cost."""
    check, s, stats = record_with_hangs("rp2", 4.0, [(0.8, 0.055), (1.8, 0.065), (2.8, 0.08)])
    assert check.frames == 4 * RATE and check.garbled == 0
    assert stats.rx_padded_frames == 0  # the model invented nothing
    # the loss is real: the model dropped frames, and exactly those are missing from the ramp
    assert stats.overrun_frames > 0
    assert check.repeated == 0 and check.skipped == stats.overrun_frames
    acc = account(check, s, SLACK)
    assert acc and all(a["seen_by"] == "agent" for a in acc), acc
    # the agent's own estimate, from its clock alone, is within its stated tolerance per loss
    board = s["board"]
    assert board["overruns"] >= 1
    assert abs(board["lost_frames"] - stats.overrun_frames) <= 64 * len(acc), (board, stats)
    assert s["overruns"] >= 1 and s["lost_frames"] >= stats.overrun_frames  # the port's count too


@pytest.mark.slow
def test_an_esp32_loses_whole_dma_buffers_the_oldest_first_and_the_agent_places_them():
    """esp32 (docs/sim.md, the esp32 rules): a hang longer than its 8 RX DMA buffers (ibuf
    16384: 2048 bytes each, 256 frames) loses whole buffers, the oldest queued: the ramp jumps
    right where the reads were, and the agent places the loss there, within a buffer."""
    check, s, stats = record_with_hangs("esp32s3", 3.0, [(1.0, 0.25)])
    assert check.frames == 3 * RATE and check.garbled == 0 and stats.rx_padded_frames == 0
    assert check.repeated == 0 and check.skipped == stats.overrun_frames > 0
    assert all(d.jump % 256 == 0 for d in check.discontinuities), check.discontinuities
    acc = account(check, s, 256)
    assert acc and all(a["seen_by"] == "agent" for a in acc), (acc, s["board"].get("overrun_at"))
    assert abs(s["board"]["lost_frames"] - stats.overrun_frames) <= 256 * len(acc)


@pytest.mark.slow
def test_no_loss_no_overrun():
    """The estimate never cries wolf: where the board lost nothing (by the model's count and the
    ramp), the agent counts no overrun. (On a loaded machine the board may lose frames without a
    hang: then they are accounted for, as in the soak.)"""
    check, s, stats = record_with_hangs("rp2", 3.0, [])
    assert check.frames == 3 * RATE and check.garbled == 0 and check.repeated == 0
    assert check.skipped == stats.overrun_frames
    if stats.overrun_frames == 0:
        assert check.clean and s["overruns"] == 0 and s["board"]["overruns"] == 0
    else:
        assert all(a["seen_by"] for a in account(check, s, SLACK))


@pytest.mark.slow
def test_strict_fails_a_recording_that_lost_frames(tmp_path):
    """`i2s record --strict` exits 6 when the board hung and dropped frames, and says how many
    (a 200 ms hang against a 16 KiB ring: 42.7 ms of this stream)."""
    out = tmp_path / "r.wav"
    p = subprocess.run([sys.executable, "-m", "i2scli", "record", "-p",
                        "sim://rp2?rx_source=ramp&fault=hang:at=2.5s,for=200ms",
                        "-r", "48000", "-b", "32", "-d", "3s", "--ibuf", "16384", "--strict", "--json", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 6, p.stderr
    assert "overrun" in p.stderr and "frames lost" in p.stderr


@pytest.mark.slow
@pytest.mark.skipif(os.cpu_count() is None, reason="needs a CPU count")
def test_short_soak_under_cpu_load():
    """bench/soak's check, for 12 s, with a busy process per core beside it: whatever the load
    makes the board lose is counted, at its place; nothing is repeated or invented."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        check, s, stats = record_with_hangs("rp2", 12.0, [])
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert check.frames == 12 * RATE and check.garbled == 0 and check.repeated == 0
    assert stats.rx_padded_frames == 0
    assert check.skipped == stats.overrun_frames
    acc = account(check, s, SLACK)
    assert all(a["seen_by"] is not None for a in acc), acc
    assert np.isfinite(s["frames"])
