"""Pipes and the agent store, through the real command line."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import i2s

from i2scli.sim.wire import ramp_samples

pytestmark = pytest.mark.slow  # every test here takes 1 s or more on a loaded 2-core machine

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


# -- the stop rule record and duplex share (session.StopRule) ---------------------------------

def _burst_file(path, lead: int, sound: int, rate: int = 16000):
    """`lead` frames of silence, `sound` frames of a constant -12 dBFS, then silence."""
    x = np.zeros(lead + sound + 4 * rate, np.int16)
    x[lead:lead + sound] = 8192
    sf.write(path, x, rate, subtype="PCM_16")


def test_record_waits_for_sound_and_stops_on_silence(tmp_path):
    src, out = tmp_path / "src.wav", tmp_path / "out.wav"
    _burst_file(src, 4800, 8000)
    r = i2s("record", "-p", f"sim://fast?rx_source={src}", "-r", "16000", "-b", "16", "-c", "1", "--wait-for-sound",
            "--stop-on-silence", "200ms", out, "--json", check=0)
    s = json.loads(r.stdout)
    assert s["discarded_frames"] == 4800  # the silence before the sound, to the frame
    got, _ = sf.read(out, dtype="int16")
    assert (got[:8000] == 8192).all() and not got[8000:].any()
    # ends after 200 ms of silence (3200 frames), with the rest of the block that made it so
    assert 8000 + 3200 <= len(got) <= 8000 + 3200 + 2048, len(got)


def test_duplex_stops_recording_on_silence_and_plays(tmp_path):
    src, out, tone = tmp_path / "src.wav", tmp_path / "rec.wav", tmp_path / "tone.wav"
    _burst_file(src, 0, 8000)
    sf.write(tone, np.full(1600, 4096, np.int16), 16000, subtype="PCM_16")
    r = i2s("duplex", "-p", f"sim://fast?rx_source={src}", "-r", "16000", "-b", "16", "-c", "1", "--stop-on-silence",
            "200ms", "--max-duration", "3s", "-o", out, tone, "--json", check=0)
    s = json.loads(r.stdout)
    assert s["played_frames"] >= 1600
    got, _ = sf.read(out, dtype="int16")
    assert (got[got != 0] == 8192).all()
    assert 3200 <= len(got) - np.count_nonzero(got) <= 3200 + 2048 and len(got) < 16000, len(got)
