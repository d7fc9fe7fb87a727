"""Pipes and the agent store, through the real command line."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import soundfile as sf

from i2scli.sim.wire import ramp_samples

I2S = [sys.executable, "-m", "i2scli"]


def test_play_reads_stdin(tmp_path):
    x = np.arange(1, 2 * 4000 + 1, dtype=np.int16).reshape(-1, 2)
    buf = io.BytesIO()
    sf.write(buf, x, 8000, format="WAV", subtype="PCM_16")
    cap = tmp_path / "tx.wav"
    r = subprocess.run([*I2S, "play", "-p", f"sim://fast?tx_capture={cap}", "-", "-q"], input=buf.getvalue(),
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    flat = sf.read(cap, dtype="int16")[0].reshape(-1)
    start = np.flatnonzero(flat)[0]
    assert np.array_equal(flat[start:start + x.size], x.reshape(-1))


def test_record_writes_a_wav_to_stdout():
    r = subprocess.run([*I2S, "record", "-p", "sim://fast?rx_source=ramp", "-r", "8000", "-b", "16", "-c", "2",
                        "-s", "3000", "-q", "-"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    data, rate = sf.read(io.BytesIO(r.stdout), dtype="int16")
    assert rate == 8000 and np.array_equal(data, ramp_samples(0, 3000, 16, 2))


def test_install_and_remove(sim):
    board = sim("rp2", capture=False, events=False)
    r = subprocess.run([*I2S, "install", "-p", board.path], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "installed agent" in r.stderr
    r = subprocess.run([*I2S, "info", "-p", board.path, "--no-probe", "--json"], capture_output=True, text=True,
                       timeout=60)
    assert '"installed": true' in r.stdout
    r = subprocess.run([*I2S, "install", "--remove", "-p", board.path], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "removed" in r.stderr
