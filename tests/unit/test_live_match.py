"""Live sources (i2scli/live/): the streaming resampler measured on a sine, the drift loop on a
modelled reserve (a source and a board whose clocks differ by a known ppm), and the matcher's
start and bit-exact pass-through, with a clock and a reader queue the test drives."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf
from conftest import ENV, I2S

from i2scli.live import DriftLoop, LiveMatch, LiveParams, Resampler
from i2scli.live.resample import TAPS


def _sine(n: int, f: float = 1000.0, rate: int = 48000, ch: int = 2) -> np.ndarray:
    k = np.arange(n)
    return np.repeat((0.5 * np.sin(2 * np.pi * f * k / rate))[:, None], ch, axis=1)


def _snr_db(y: np.ndarray, w: float) -> float:
    """The sine of angular frequency w (per sample) fitted to y; its power over the residue's."""
    t = np.arange(len(y))
    a = np.stack([np.sin(w * t), np.cos(w * t), np.ones_like(t, dtype=float)], axis=1)
    c, *_ = np.linalg.lstsq(a, y, rcond=None)
    e = y - a @ c
    return float(10 * np.log10(np.sum((a @ c) ** 2) / np.sum(e**2)))


@pytest.mark.parametrize("ratio", [1.0, 1 + 500e-6, 1 - 2000e-6, 1.01])
def test_a_sine_resampled_in_blocks_keeps_100_db_snr(ratio):
    """THD+N of a 1 kHz sine through the resampler, fed in 20 ms blocks: better than -100 dB."""
    x = _sine(48000, ch=1)
    r = Resampler(1)
    y = np.concatenate([r.process(x[i:i + 960], ratio) for i in range(0, len(x), 960)])[:, 0]
    snr = _snr_db(y[2000:-2000], 2 * np.pi * 1000 / 48000 / ratio)
    print(f"ratio {ratio}: SNR {snr:.1f} dB")
    assert snr > 100


def test_blocks_do_not_change_the_output_and_no_frame_is_lost():
    """However the input is cut, the output is the same (to rounding), and its length is the
    input's times the ratio, less the kernel's half width held back for the input after it."""
    x = _sine(20000)
    ratio = 1 + 1234e-6
    whole = Resampler(2).process(x, ratio)
    r = Resampler(2)
    cuts = np.cumsum(np.random.default_rng(1).integers(1, 700, 200))
    pieces = np.split(x, cuts[cuts < len(x)])
    parts = np.concatenate([r.process(p, ratio) for p in pieces])
    np.testing.assert_allclose(parts, whole, atol=1e-12)
    assert abs(len(whole) - (len(x) - TAPS // 2) * ratio) <= 1
    tail = r.flush(ratio)
    assert abs(len(parts) + len(tail) - len(x) * ratio) <= 1


def test_a_ratio_changed_between_blocks_makes_no_step():
    """Tiny ratio steps (as the loop makes them, 20 ppm every 20 ms) leave the sine clean: each
    output sample is the sine at exactly the position the steps put it, no click at a step."""
    x = _sine(48000, ch=1)
    r = Resampler(1)
    out, where = [], []
    p = 0.0  # the input position of the next output sample
    for j, i in enumerate(range(0, len(x), 960)):
        ratio = 1 + (j % 7) * 20e-6
        y = r.process(x[i:i + 960], ratio)
        where.append(p + np.arange(len(y)) / ratio)
        p += len(y) / ratio
        out.append(y)
    y, at = np.concatenate(out)[:, 0], np.concatenate(where)
    ideal = 0.5 * np.sin(2 * np.pi * 1000 * at / 48000)
    err = (y - ideal)[100:-100]
    assert 10 * np.log10(np.sum(ideal[100:-100] ** 2) / np.sum(err**2)) > 100


def test_the_switch_from_passing_to_resampling_is_seamless():
    """Audio that went out as it is, then resampled from its last samples on: the join is as
    clean as the resampler itself."""
    x = _sine(9600, ch=1)
    r = Resampler(1, x[:4800])
    y = np.concatenate([x[:4800], r.process(x[4800:], 1.0)])[:, 0]
    assert _snr_db(y[3000:-100], 2 * np.pi * 1000 / 48000) > 100


def _run_loop(ppm: float, params: LiveParams, seconds: float, rate: int = 48000, block: int = 960,
              fill0: float = 0.1) -> tuple[DriftLoop, list[float]]:
    """The reserve as the stream sees it: the source adds `block` frames every block/rate s of its
    clock, the board takes (1 + ppm) as fast, through the loop's ratio (board frames per source
    frame); the fill is sampled at each take."""
    loop = DriftLoop(rate, params)
    fill = fill0 * rate
    fills = []
    t, dt = 0.0, block / rate
    while t < seconds:
        u = loop.update(fill + (t * 997) % block * 0.0, t)  # sampled at the take
        fill += block - block * (1 + ppm * 1e-6) / (1 + u)
        fills.append(fill / rate)
        t += dt
    return loop, fills


@pytest.mark.parametrize("ppm", [300, -300, 1500])
def test_the_loop_converges_to_the_drift_and_holds_the_reserve(ppm):
    loop, fills = _run_loop(ppm, LiveParams(target_s=0.1, max_ppm=2000, loop_s=5), 80)
    assert abs(loop.integral * 1e6 - ppm) < 5
    assert max(abs(f - 0.1) for f in fills[-1000:]) < 0.0005  # within half a millisecond


def test_the_correction_is_bounded():
    loop, fills = _run_loop(5000, LiveParams(target_s=0.1, max_ppm=2000, loop_s=5), 20)
    assert loop.u * 1e6 == pytest.approx(2000) and fills[-1] < fills[0]  # drifts at what is left over


class FakeReader:
    """A reader queue and a clock the test moves: `backlog()` as audio.Input gives it."""

    def __init__(self, rate: int):
        self.rate, self.queued, self.now, self.arrived = rate, 0, 100.0, 100.0

    def backlog(self):
        return self.queued, self.rate, self.arrived

    def clock(self):
        return self.now


def test_auto_passes_audio_as_it_is_while_the_reserve_lasts():
    f = FakeReader(16000)
    m = LiveMatch(16000, 2, f.backlog, "auto", "a pipe", LiveParams(loop_s=1), clock=f.clock)
    m.start(3200)
    blk = np.ones((320, 2))
    for _ in range(500):
        f.now += 0.02
        f.arrived, f.queued = f.now, 4000
        assert m.take(blk) is blk and not m.engaged
        assert m.resample(blk / 3) is not None
    assert m.summary()["drift_ppm"] == pytest.approx(0, abs=1)
    f.queued = 100  # the reserve runs low: the board outruns the source
    for _ in range(200):
        f.now += 0.02
        f.arrived = f.now
        m.take(blk)
    assert m.engaged and m.loop.u > 0


def test_live_skips_what_piled_up_before_the_start_then_plays_every_frame():
    """--live: what came while the board was made ready beyond the reserve and the ring is
    skipped, oldest first, before anything plays; from then on each block is played."""
    rate = 16000
    f = FakeReader(rate)
    m = LiveMatch(rate, 2, f.backlog, "live", "a pipe", LiveParams(target_s=0.1, loop_s=1), clock=f.clock)
    m.start(1600)  # a ring of 100 ms
    f.queued = 16000  # a second piled up
    out = 0
    blk = np.ones((320, 2))
    empty = blk[:0]
    while m.skipping:
        f.now += 0.001
        b = blk if f.queued >= 320 else empty
        f.queued -= len(b)
        out += len(m.take(b))
    assert f.queued == 0 and m.skipped + out == 16000
    assert 0.2 * rate - 320 <= out <= 0.2 * rate  # the reserve and the ring kept, the newest audio
    for _ in range(10):  # from here on every block plays
        f.now += 0.02
        f.arrived = f.now
        assert len(m.take(blk)) == 320


def test_live_waits_for_a_source_with_no_backlog_and_an_early_end_loses_nothing():
    """--live on a source that had nothing piled up (a sound server's silent monitor): nothing
    plays until the reserve and the ring are there, however long that takes; a source that ends
    before gets all it gave played (`rest`)."""
    rate = 16000
    f = FakeReader(rate)
    m = LiveMatch(rate, 2, f.backlog, "live", "a pipe", LiveParams(target_s=0.1, loop_s=1), clock=f.clock)
    m.start(1600)  # a ring of 100 ms: 3200 frames wanted before the first audio
    blk = np.arange(640, dtype=float).reshape(320, 2)
    given = 0
    for _ in range(9):  # 2880 frames, 0.18 s apart each: long past the start's drain time
        f.now += 0.18
        f.arrived = f.now
        assert len(m.take(blk)) == 0 and m.skipping
        given += 320
    rest = m.rest()
    assert not m.skipping and m.skipped == 0 and len(rest) == given == 2880
    f.now += 0.02
    assert m.rest() is None and len(m.take(blk)) == 320  # past the wait, blocks play as they come


@pytest.mark.slow
@pytest.mark.parametrize("args,words", [
    (["play", "--live", "FILE"], "--live matches a stream"),
    (["play", "--live", "--tone", "440"], "--live matches a stream"),
    (["play", "--live-reserve", "2s", "-"], "--live-reserve"),
    (["record", "--max-file-time", "1s", "-"], "--max-file-time"),
])
def test_live_and_split_flags_that_cannot_apply_are_usage_errors(args, words, tmp_path):
    """One line, exit 2, before any board is looked for."""
    wav = tmp_path / "a.wav"
    sf.write(str(wav), np.zeros((100, 2)), 16000)
    r = subprocess.run([*I2S, *[str(wav) if a == "FILE" else a for a in args], "-p", "/dev/i2s-no-such-port"],
                       capture_output=True, text=True, env=ENV, timeout=60, stdin=subprocess.DEVNULL)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len([ln for ln in lines if "rror" in ln]) == 1


def test_the_view_says_the_drift_and_the_reserve():
    f = FakeReader(16000)
    m = LiveMatch(16000, 2, f.backlog, "off", "a pipe", LiveParams(loop_s=1), clock=f.clock)
    m.start(3200)
    assert m.view() == ""  # nothing measured yet
    blk = np.ones((320, 2))
    for i in range(400):  # a reserve that shrinks 1.6 frames a block: -5000 ppm of 16000 frames/s
        f.now += 0.02
        f.arrived, f.queued = f.now, 4000 - int(i * 1.6)
        m.take(blk)
    v = m.view()
    assert v.startswith("drift +") and "ppm" in v and v.endswith(" ms") and "reserve" in v
