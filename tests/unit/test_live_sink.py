"""A recording matched to a reader on a clock of its own (i2scli/live/sink.py): the measure, what
is queued in the host and in the pipe, counted exactly against a real pipe; and the loop holding
it against a plain reader thread that reads a real pipe at a set rate."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from i2scli.audio.pipesink import PipeWriter
from i2scli.live import LiveParams, SinkMatch


def _settled(fn, want, timeout: float = 5.0):
    """fn() once it equals `want` (the writer's thread moves a chunk between two counts)."""
    deadline = time.monotonic() + timeout
    while (got := fn()) != want and time.monotonic() < deadline:
        time.sleep(0.0002)
    return got


def test_the_backlog_is_the_hosts_and_the_pipes_to_the_byte():
    """A reader that does not read: the pipe holds what it can (FIONREAD on its write end), the
    host the rest; each byte read comes off the sum, none counted twice or lost between them."""
    r, w = os.pipe()
    try:
        pw = PipeWriter(w, 64000)
        assert pw.fifo
        for _ in range(25):
            assert pw.put(bytes(4000), 1000)
        deadline = time.monotonic() + 5
        while pw.queued()[1] < 60000 and time.monotonic() < deadline:  # the pipe filling (64 kB: 16 pages)
            time.sleep(0.01)
        host, pipe = pw.queued()
        assert host + pipe == 100000 and host >= 100000 - (1 << 16), (host, pipe)
        got = 0
        for n in (10000, 333, 4000, 7):
            got += len(os.read(r, n))
            assert _settled(lambda: sum(pw.queued()), 100000 - got) == 100000 - got
        while got < 100000:
            got += len(os.read(r, 65536))
        assert _settled(pw.queued, (0, 0)) == (0, 0)
        pw.close()
    finally:
        os.close(r)
        os.close(w)


def _stream(ppm: float, late: float, mode: str, seconds: float, loop: float) -> tuple[dict, np.ndarray, bytes, int]:
    """The board's 20 ms blocks at 16000 Hz (a clock the test steps, so a loaded host does not move
    the figures) through SinkMatch into a real pipe, read by a sound card's player that takes
    16000·(1 - ppm) frames a second from `late` on: the summary, what went in, what the reader
    read, and how often it found nothing (frames)."""
    rate, block = 16000, 320
    r, w = os.pipe()
    os.set_blocking(r, False)
    now = [0.0]
    pw = PipeWriter(w, rate * 4)
    m = SinkMatch(rate, 2, 16, lambda: sum(pw.queued()) // 4, mode, "a pipe",
                  LiveParams(max_ppm=40000, loop_s=loop), clock=lambda: now[0])
    x = (np.arange(int(rate * seconds) * 2) % 2000 - 1000).astype("<i2").reshape(-1, 2)
    read = bytearray()
    missed = 0
    for sent in range(0, len(x), block):
        now[0] = sent / rate
        due = int(max(0.0, now[0] - late) * rate * (1 - ppm * 1e-6)) * 4 - len(read) - missed
        if due > 0:  # what is not there when it is due is an underrun, played as silence, not made up later
            try:
                got = os.read(r, due)
            except BlockingIOError:
                got = b""
            read.extend(got)
            missed += due - len(got)
        y = m.convert(x[sent:sent + block])
        pw.put(y.astype("<i2").tobytes(), len(y))
        assert _settled(lambda: pw.queued()[0], 0) == 0  # all of it in the pipe before the clock moves on
    tail = m.finish(np.dtype("<i2"))
    if tail is not None:
        pw.put(tail.tobytes(), len(tail))
    pw.close()
    os.close(w)
    while True:  # the rest, as the reader would have it
        try:
            got = os.read(r, 1 << 16)
        except BlockingIOError:
            break
        if not got:
            break
        read.extend(got)
    os.close(r)
    return m.summary(), x, bytes(read), missed // 4


@pytest.mark.parametrize("ppm,late", [(20000, 0.0), (-20000, 0.5), pytest.param(300, 0.0, marks=pytest.mark.slow)])
def test_a_reader_on_its_own_clock_is_matched_and_its_drift_measured(ppm, late):
    """A real pipe read at a set rate, the reader's clock `ppm` slower than the board's: --live
    builds its backlog first (the silence), then holds it while the drift is measured; every
    frame is counted. A reader that begins `late` (a player connecting to its server) has the
    board's audio of meanwhile skipped. (A crystal's 300 ppm with the defaults: a minute, and a
    loop of 10 s.)"""
    block = 320
    s, x, read, missed = _stream(ppm, late, "live", *((60.0, 10.0) if abs(ppm) < 1000 else (8.0, 1.0)))
    print(s)
    # the silence went out in place of the first block; the next are skipped until the reader is seen
    # reading between two of them (from 20 ms on, or from `late` on)
    skipped = block + (int(late * 16000) if late else block)
    assert s["skipped_frames"] == skipped and s["source_frames"] == len(x) - skipped
    # the silence (the 100 ms target), and what the reader took of it meanwhile made up, comes first
    assert 1600 < s["padded_frames"] <= 1600 + 2.1 * block  # (the reader reads from 20 ms on)
    assert len(read) == 4 * (s["padded_frames"] + s["resampled_frames"])
    assert not any(read[:4 * s["padded_frames"]]) and any(read[4 * s["padded_frames"]:][:4 * block])
    assert missed == 0  # the backlog was there before the reader's first read, and never ran out
    assert abs(s["drift_ppm"] - ppm) < 0.02 * abs(ppm)
    lo, hi = s["fill_band_ms"]
    # within less than a tenth of what the drift would have moved it meanwhile (measured: +20104,
    # -20089, +300.8 ppm; bands of 4.9, 4.8 and 0.4 ms)
    assert lo > 10 and hi - lo < 0.1 * abs(ppm) * 1e-6 * s["settled_s"] * 1000


def test_without_live_the_recording_is_bit_exact_and_the_drift_measured():
    """Auto (a pipe, no flag): every frame goes out as the board recorded it, nothing skipped or
    added; the backlog piles up at the clocks' difference (the reader 2 % slow), which is the
    drift reported."""
    s, x, read, _ = _stream(20000, 0.0, "auto", 4.0, 1.0)
    assert read == x.tobytes()
    assert not s["engaged"] and s["resampled_frames"] is None and s["skipped_frames"] == s["padded_frames"] == 0
    assert abs(s["drift_ppm"] - 20000) < 0.02 * 20000, s
