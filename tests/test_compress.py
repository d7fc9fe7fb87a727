"""Lossless wire compression on the stream (docs/protocol.md, "Wire compression"): CD-quality
audio through a Pico's 180 kB/s stdin, bit-exact; what cannot compress is refused honestly;
damage is caught, never played."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import i2s

from i2scli import protocol


def music(path, rate=48000, seconds=2.0, channels=2):
    t = np.arange(int(rate * seconds)) / rate
    env = (1 + np.sin(2 * np.pi * 0.7 * t)) / 2
    x = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate([220, 330, 440, 550, 660, 880])) * env * 5000
    x = np.stack([x, np.roll(x, 100)], 1)[:, :channels] + np.random.default_rng(1).normal(0, 30, (t.size, channels))
    x = np.clip(x, -32768, 32767).astype(np.int16)
    sf.write(path, x, rate, subtype="PCM_16")
    return x


def noise(path, rate=48000, seconds=2.0):
    x = np.random.default_rng(2).integers(-32768, 32768, (int(rate * seconds), 2)).astype(np.int16)
    sf.write(path, x, rate, subtype="PCM_16")
    return x


def captured(path) -> np.ndarray:
    got, _ = sf.read(path, dtype="int16", always_2d=True)
    return got


def sounding(x: np.ndarray) -> np.ndarray:
    """The rows that are not silence on every channel: the test signals have none, so this
    drops only the zeros the bus clocks before the first sample (and in a load-made gap)."""
    return x[x.any(axis=1)]


def exact_on_the_wire(src: np.ndarray, cap: np.ndarray) -> bool:
    return np.array_equal(sounding(cap), sounding(src))


def _play_near_the_limit(*args) -> dict:
    """A coded CD-quality stream takes ~65 % of the Pico's link, and the probe measures the
    virtual link in wall time: a loaded host can starve the stream, which the board counts
    (underruns), or make the probe measure the link too slow to carry even the coded stream
    (refused, exit 4, "(measured)"). Either is run again, up to three times; the last try
    forces the coding without the probe (`--compress on --no-probe`), since what is proven
    here is the coded path, bit-exact, not the link's speed on a loaded machine."""
    tries = [args, args, (*args[:1], "--compress", "on", "--no-probe", *args[1:])]
    for i, a in enumerate(tries):
        r = i2s(*a, check=None, timeout=90)
        if r.returncode == 4 and "(measured)" in r.stderr and i < len(tries) - 1:
            continue
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        s = json.loads(r.stdout)
        if not s["underruns"]:
            break
    return s


def test_cd_quality_music_plays_bit_exact_through_a_pico(tmp_path):
    src = music(tmp_path / "music.wav")
    cap = tmp_path / "tx.wav"
    s = _play_near_the_limit("play", "--json", "-p", f"sim://rp2?tx_capture={cap}", tmp_path / "music.wav")
    assert s["underruns"] == 0 and s["crc_errors"] == 0
    c = s["compression"]
    assert c["ratio"] >= 1.5 and c["frames_compressed"] > 0
    assert c["board_us_per_audio_s"] > 0  # measured on the board, ticks_us around the decoder
    assert exact_on_the_wire(src, captured(cap))
    # coded frames allocate nothing in steady state (no call frame on the heap, no slice)
    assert s["board"]["heap_alloc"] == 0 and s["board"]["heap_frames"] > 0


def test_coded_play_through_a_pyboard_vcp_allocates_nothing(tmp_path):
    # the VCP reads a whole buffer: short coded payloads go through preallocated views
    music(tmp_path / "music.wav")
    r = i2s("play", "--json", "--compress", "on", "--no-probe", "-p", "sim://stm32", tmp_path / "music.wav",
            check=0, timeout=90)
    s = json.loads(r.stdout)
    assert s["compression"]["frames_compressed"] > 0
    assert s["board"]["heap_alloc"] == 0 and s["board"]["heap_frames"] > 0


def test_without_compression_the_same_file_is_refused(tmp_path):
    music(tmp_path / "music.wav")
    r = i2s("play", "--compress", "off", "-p", "sim://rp2", tmp_path / "music.wav", check=4, timeout=90)
    assert "kB/s" in r.stderr


def test_white_noise_is_refused_saying_compression_cannot_help(tmp_path):
    noise(tmp_path / "noise.wav")
    r = i2s("play", "-p", "sim://rp2", tmp_path / "noise.wav", check=4, timeout=90)
    line = r.stderr.strip().splitlines()[-1]
    assert "compression cannot help" in line and "does not compress" in line


@pytest.mark.parametrize("profile, bits, channels", [
    ("rp2", 16, 1), ("rp2", 16, 2), ("rp2", 32, 1), ("rp2", 32, 2), ("mimxrt", 16, 2), ("openmv", 32, 2),
    ("esp32s3", 16, 2)])
def test_forced_compression_is_exact_on_every_profile(tmp_path, profile, bits, channels):
    # a stream that fits anyway, coded on request: the path must be exact everywhere
    src = music(tmp_path / "m.wav", rate=16000, seconds=1.0, channels=channels)
    cap = tmp_path / "tx.wav"
    r = i2s("play", "--json", "--compress", "on", "-b", bits, "-p", f"sim://{profile}?tx_capture={cap}",
            tmp_path / "m.wav", check=0, timeout=90)
    s = json.loads(r.stdout)
    assert s["compression"]["frames_compressed"] > 0 and s["underruns"] == 0
    got, _ = sf.read(cap, dtype="int32" if bits == 32 else "int16", always_2d=True)
    want = src.reshape(-1, channels).astype(np.int32) << 16 if bits == 32 else src.reshape(-1, channels)
    assert exact_on_the_wire(want, got[:, :channels])  # MONO TX drives both slots with the sample
    if bits == 32:  # 16-bit audio in 32-bit slots: 16 zero bits a sample cost nothing
        assert s["compression"]["ratio"] >= 2.5


def test_recording_coded_on_the_board_is_exact(tmp_path):
    out = tmp_path / "rec.wav"
    r = i2s("record", "--json", "--compress", "on", "-r", "16000", "-b", "32", "-c", "2", "-s", "24000",
            "-p", "sim://rp2?rx_source=ramp", out, check=0, timeout=90)
    s = json.loads(r.stdout)
    assert s["compression"]["frames_compressed"] > 0 and s["overruns"] == 0
    assert s["board"]["heap_alloc"] == 0 and s["board"]["heap_frames"] > 0
    x, _ = sf.read(out, dtype="int32")
    assert x.shape == (24000, 2)
    assert np.all(np.diff(x[:, 0].astype(np.int64)) == np.diff(x[:2, 0].astype(np.int64))[0])


def test_a_corrupted_coded_frame_is_caught_not_played(tmp_path):
    src = music(tmp_path / "music.wav")
    cap = tmp_path / "tx.wav"
    # a byte flipped deep in the coded stream (the agent's upload is ~40 kB before it)
    url = f"sim://rp2?tx_capture={cap}&fault=corrupt:offset=150000,xor=0x10"
    # (--compress on: this test is about the coded frame, not about what the link measured)
    r = i2s("play", "--compress", "on", "-p", url, tmp_path / "music.wav", check=5, timeout=90)
    assert "damaged" in r.stderr
    got, want = sounding(captured(cap)), sounding(src)
    # what played is the music with one DATA frame's audio (rp2: 500 bytes = 125 frames)
    # missing: nothing else, and no garbage
    missing = len(want) - len(got)
    assert 0 < missing <= protocol.tx_payload(512, 4) // 4 == 125
    a = int(np.flatnonzero((got != want[: len(got)]).any(axis=1))[0])
    assert np.array_equal(got[:a], want[:a]) and np.array_equal(got[a:], want[a + missing:])


def test_a_board_without_viper_gets_raw_frames_and_works(tmp_path):
    src = music(tmp_path / "m.wav", rate=16000, seconds=1.0)
    cap = tmp_path / "tx.wav"
    url = f"sim://rp2?native=0&tx_capture={cap}"  # a firmware built without a native emitter
    info = json.loads(i2s("info", "--json", "--no-probe", "-p", url, check=0).stdout)
    assert info["wire_coder"] is None
    s = json.loads(i2s("play", "--json", "--compress", "auto", "-p", url, tmp_path / "m.wav", check=0).stdout)
    assert s["compression"] is None and s["underruns"] == 0
    assert exact_on_the_wire(src, captured(cap))
    # what needs compression is refused, saying why it cannot have it
    music(tmp_path / "cd.wav")
    r = i2s("play", "-p", "sim://rp2?native=0", tmp_path / "cd.wav", check=4, timeout=90)
    assert "cannot be sent compressed" in r.stderr and "viper" in r.stderr
    r = i2s("play", "--compress", "on", "-p", "sim://rp2?native=0", tmp_path / "m.wav", check=4)
    assert "cannot compress" in r.stderr


# -- the irq and asyncio styles code as the blocking streams do (issue 16.3) ------------------

@pytest.mark.parametrize("io", ["irq", "asyncio"])
def test_cd_quality_music_plays_bit_exact_in_every_io_style(tmp_path, io):
    """48 kHz 16-bit stereo music on a Pico with --io irq / asyncio: refused before (the
    styles sent raw frames only), now coded, 0 underruns, bit-exact."""
    src = music(tmp_path / "music.wav")
    cap = tmp_path / "tx.wav"
    s = _play_near_the_limit("play", "--json", "--io", io, "-p", f"sim://rp2?tx_capture={cap}",
                             tmp_path / "music.wav")
    assert s["underruns"] == 0 and s["crc_errors"] == 0
    c = s["compression"]
    assert c["ratio"] >= 1.5 and c["frames_compressed"] > 0
    assert exact_on_the_wire(src, captured(cap))


@pytest.mark.parametrize("io", ["irq", "asyncio"])
def test_recording_coded_in_every_io_style_is_exact(tmp_path, io):
    out = tmp_path / "rec.wav"
    r = i2s("record", "--json", "--io", io, "--compress", "on", "-r", "16000", "-b", "32", "-c", "2", "-s", "8000",
            "-p", "sim://rp2?rx_source=ramp", out, check=0, timeout=90)
    s = json.loads(r.stdout)
    assert s["compression"]["frames_compressed"] > 0 and s["overruns"] == 0
    got, _ = sf.read(out, dtype="int32")
    assert got.shape == (8000, 2)
    steps = np.diff(got[:, 0].astype(np.int64))
    assert np.all(steps == steps[0])  # an exact run of the counting source: nothing lost or repeated
