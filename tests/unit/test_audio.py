"""i2scli.audio: exact file <-> wire conversion, streaming, levels, recordings that survive SIGKILL.

Expected values are computed here from the source integers, independently of the module.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT

from i2scli.audio import (
    AudioError,
    BusFormat,
    ConvertStats,
    Levels,
    check_output_path,
    check_writable,
    open_input,
    open_output,
    parse_channels_map,
    play_blocks,
    tone_blocks,
    wire_to_array,
)
from i2scli.cli.advice import words as cli_words

ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
N = 5000  # frames in generated files: more than one default block, not a multiple of odd block sizes


def source_ints(depth: int, frames: int, channels: int, seed: int = 0) -> np.ndarray:
    """Random signed `depth`-bit integers (int64, shape (frames, channels)) with both rails, 0 and -1 first."""
    lo, hi = -(1 << (depth - 1)), (1 << (depth - 1)) - 1
    x = np.random.default_rng(seed).integers(lo, hi + 1, size=(frames, channels), dtype=np.int64)
    x[:4] = np.array([lo, hi, 0, -1])[:, None]
    return x


def write_int_file(path: Path, s: np.ndarray, depth: int, rate: int = 48000, fmt: str | None = None) -> None:
    """Write signed `depth`-bit ints exactly: PCM_U8 for 8 (offset binary), PCM_16/24/32 otherwise."""
    if depth == 8:
        sf.write(path, (s << 8).astype(np.int16), rate, subtype="PCM_U8", format=fmt)  # int16 top byte -> u8
    elif depth == 16:
        sf.write(path, s.astype(np.int16), rate, subtype="PCM_16", format=fmt)
    else:
        sf.write(path, (s << (32 - depth)).astype(np.int32), rate, subtype=f"PCM_{depth}", format=fmt)


def expected_wire(s: np.ndarray, depth: int, bus: BusFormat) -> np.ndarray:
    """Integer file samples -> wire: left-justify to 32 bits, keep the top `bus.bits`; adapt channels."""
    left = s << (32 - depth)
    w = left if bus.bits == 32 else left >> 16
    return adapt_channels(w, bus)


def adapt_channels(w: np.ndarray, bus: BusFormat) -> np.ndarray:
    if w.shape[1] == 1 and bus.channels == 2:
        return np.repeat(w, 2, axis=1)
    return w[:, : bus.channels]


def play(path, bus: BusFormat, channels_map=None, **kw) -> np.ndarray:
    with open_input(str(path), channels_map) as inp:
        data = b"".join(play_blocks(inp, bus, **kw))
    return wire_to_array(data, bus).astype(np.int64)


BUSES = [BusFormat(48000, b, c) for b in (16, 32) for c in (1, 2)]


# --- bus format ------------------------------------------------------------------------------


def test_bus_format():
    bus = BusFormat(48000, 32, 2)
    assert (bus.frame_bytes, bus.bytes_per_second, bus.dtype) == (8, 384000, np.dtype("<i4"))
    assert bus.describe() == "48000 Hz 32-bit stereo"
    mono = BusFormat(16000, 16, 1)
    assert (mono.frame_bytes, mono.dtype, mono.describe()) == (2, np.dtype("<i2"), "16000 Hz 16-bit mono")
    for bad in [(48000, 24, 2), (48000, 16, 3), (0, 16, 2)]:
        with pytest.raises(AudioError):
            BusFormat(*bad)
    with pytest.raises(ValueError):
        wire_to_array(b"\0" * 7, bus)


# --- file -> wire, exact -----------------------------------------------------------------------


@pytest.mark.parametrize("bus", BUSES, ids=BusFormat.describe)
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("depth,fmt,ext", [
    (8, "WAV", "wav"), (16, "WAV", "wav"), (24, "WAV", "wav"), (32, "WAV", "wav"),
    (24, "WAVEX", "wav"), (16, "FLAC", "flac"), (24, "FLAC", "flac"), (24, "RF64", "rf64"),
])
def test_integer_files_exact(tmp_path, bus, channels, depth, fmt, ext):
    s = source_ints(depth, N, channels, seed=depth + channels)
    path = tmp_path / f"in.{ext}"
    write_int_file(path, s, depth, fmt=fmt)
    stats = ConvertStats()
    got = play(path, bus, stats=stats)
    np.testing.assert_array_equal(got, expected_wire(s, depth, bus))
    assert (stats.frames, stats.input_frames, stats.clipped) == (N, N, 0)
    assert stats.peak == np.abs(expected_wire(s, depth, bus)).max(axis=0).tolist()


def test_unsigned_8bit_is_offset_binary(tmp_path):
    u = np.array([0, 1, 127, 128, 129, 255], dtype=np.uint8)
    path = tmp_path / "u8.wav"
    path.write_bytes(_wav_bytes(u.tobytes(), rate=8000, channels=1, bits=8))
    with open_input(str(path)) as inp:
        assert inp.subtype == "PCM_U8" and inp.integer
        data = b"".join(play_blocks(inp, BusFormat(8000, 32, 1)))
    assert wire_to_array(data, BusFormat(8000, 32, 1)).ravel().tolist() == [(int(v) - 128) << 24 for v in u]


def _wav_bytes(payload: bytes, rate: int, channels: int, bits: int) -> bytes:
    import struct

    width = bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * width, channels * width, bits)
    return (b"RIFF" + struct.pack("<I", 36 + len(payload)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", len(payload)) + payload)


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("bus", BUSES, ids=BusFormat.describe)
def test_float_files_scaled_rounded_clipped(tmp_path, subtype, bus):
    rng = np.random.default_rng(5)
    x = rng.uniform(-1.2, 1.2, size=(N, 2)).astype(np.float32).astype(np.float64)
    x[:6, 0] = [1.0, -1.0, 0.5 / 2**15, 1.5 / 2**15, -0.5 / 2**15, 0.0]  # rails and half-way points
    path = tmp_path / "f.wav"
    sf.write(path, x, 48000, subtype=subtype)
    stats = ConvertStats()
    got = play(path, bus, stats=stats)
    y = np.rint(adapt_channels(x, bus) * 2.0 ** (bus.bits - 1))
    lo, hi = -(2 ** (bus.bits - 1)), 2 ** (bus.bits - 1) - 1
    np.testing.assert_array_equal(got, np.clip(y, lo, hi).astype(np.int64))
    assert stats.clipped == int(np.count_nonzero((y > hi) | (y < lo))) > 0
    if bus.bits == 16:
        assert got[2:5, 0].tolist() == [0, 2, 0]  # round half to even


def float_with_nonfinite(frames: int, seed: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Random float samples (past full scale too) with NaN, +inf and -inf scattered on both
    channels, never in the first frame; and the mask of the non-finite ones."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.2, 1.2, size=(frames, 2)).astype(np.float32).astype(np.float64)
    bad = np.zeros(x.shape, bool)
    bad[1 + rng.choice(frames - 1, 60, replace=False), rng.integers(0, 2, 60)] = True
    bad[[10, 11, 12], 0] = True  # a run of them on the left
    x[bad] = np.resize([np.nan, np.inf, -np.inf], int(bad.sum()))
    return x, bad


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("bus", BUSES, ids=BusFormat.describe)
def test_nonfinite_float_samples_play_as_silence(tmp_path, subtype, bus):
    """NaN and ±inf go out as 0, are counted (only the channels played), and numpy says nothing."""
    x, bad = float_with_nonfinite(N)
    path = tmp_path / "nan.wav"
    sf.write(path, x, 48000, subtype=subtype)
    stats = ConvertStats()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "invalid value encountered in cast" would fail here
        got = play(path, bus, stats=stats, block_frames=1000)
    y = np.rint(adapt_channels(np.where(bad, 0.0, x), bus) * 2.0 ** (bus.bits - 1))
    lo, hi = -(2 ** (bus.bits - 1)), 2 ** (bus.bits - 1) - 1
    np.testing.assert_array_equal(got, np.clip(y, lo, hi).astype(np.int64))
    assert not got[adapt_channels(bad, bus)].any()
    played = bad[:, : bus.channels] if bus.channels == 1 else bad  # a mono bus plays the left channel
    assert stats.nonfinite == int(played.sum()) > 0
    assert stats.summary()["nonfinite"] == stats.nonfinite
    assert stats.clipped == int(np.count_nonzero((y > hi) | (y < lo)))  # inf is silence, not clipping


def test_nonfinite_samples_with_gain_and_resampling_stay_put(tmp_path):
    """Silenced before gain and the resampler: a NaN does not spread over its neighbours."""
    x = np.zeros((44100, 2))
    x[:, 0] = 0.25 * np.sin(2 * np.pi * 1000 * np.arange(44100) / 44100)
    x[5000, 0], x[6000, 1], x[7000, 0] = np.nan, np.inf, -np.inf
    sf.write(tmp_path / "n.wav", x, 44100, subtype="FLOAT")
    clean = x.copy()
    clean[5000, 0] = clean[6000, 1] = clean[7000, 0] = 0.0
    sf.write(tmp_path / "clean.wav", clean, 44100, subtype="FLOAT")
    for bus, gain in [(BusFormat(44100, 32, 2), 6.0), (BusFormat(48000, 16, 2), 0.0), (BusFormat(48000, 32, 2), -3.0)]:
        stats = ConvertStats()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = play(tmp_path / "n.wav", bus, gain_db=gain, stats=stats)
        np.testing.assert_array_equal(got, play(tmp_path / "clean.wav", bus, gain_db=gain))
        assert stats.nonfinite == 3 and not got[:, 1].any()


def test_huge_finite_doubles_clip_without_a_warning(tmp_path):
    x = np.array([[1e300, -1e300], [0.5, -0.5]])
    sf.write(tmp_path / "huge.wav", x, 48000, subtype="DOUBLE")
    stats = ConvertStats()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # x * 2**31 overflows to inf: clipped, quietly
        got = play(tmp_path / "huge.wav", BusFormat(48000, 32, 2), stats=stats)
    assert got.tolist() == [[2**31 - 1, -(2**31)], [2**30, -(2**30)]]
    assert (stats.clipped, stats.nonfinite) == (2, 0)


def test_flac_gives_the_same_wire_bytes_as_wav(tmp_path):
    s = source_ints(24, N, 2, seed=9)
    write_int_file(tmp_path / "a.wav", s, 24)
    write_int_file(tmp_path / "a.flac", s, 24)
    for bus in BUSES:
        with open_input(str(tmp_path / "a.wav")) as a, open_input(str(tmp_path / "a.flac")) as b:
            assert b"".join(play_blocks(a, bus)) == b"".join(play_blocks(b, bus))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["int", "float", "gain"])
def test_blocks_concatenate_regardless_of_block_size(tmp_path, kind):
    path = tmp_path / "x.wav"
    if kind == "float":
        sf.write(path, np.random.default_rng(1).uniform(-1, 1, (N, 2)), 48000, subtype="FLOAT")
    else:
        write_int_file(path, source_ints(24, N, 2), 24)
    bus = BusFormat(48000, 16, 2)
    gain = 3.0 if kind == "gain" else 0.0
    results = set()
    with open_input(str(path)) as inp:
        for block in (1, 7, 1000, 4096, 100000):
            blocks = list(play_blocks(inp, bus, block_frames=block, gain_db=gain))
            assert all(len(b) % bus.frame_bytes == 0 for b in blocks)
            assert max(len(b) for b in blocks) <= block * bus.frame_bytes
            results.add(b"".join(blocks))
    assert len(results) == 1


def test_start_and_max_frames(tmp_path):
    s = source_ints(16, N, 2)
    write_int_file(tmp_path / "x.wav", s, 16)
    bus = BusFormat(48000, 16, 2)
    np.testing.assert_array_equal(play(tmp_path / "x.wav", bus, start_frame=100, max_frames=333), s[100:433])
    np.testing.assert_array_equal(play(tmp_path / "x.wav", bus, start_frame=N - 5, max_frames=333), s[N - 5:])
    assert play(tmp_path / "x.wav", bus, start_frame=N + 5).size == 0


@pytest.mark.parametrize("gain_db", [6.0, -6.0, 20.0])
def test_gain_rounds_clips_and_counts(tmp_path, gain_db):
    s = source_ints(16, N, 1, seed=3)
    write_int_file(tmp_path / "g.wav", s, 16)
    bus = BusFormat(48000, 16, 2)
    stats = ConvertStats()
    got = play(tmp_path / "g.wav", bus, gain_db=gain_db, stats=stats)
    y = np.rint(s * 10 ** (gain_db / 20))
    clipped = np.count_nonzero((y > 32767) | (y < -32768))
    np.testing.assert_array_equal(got, np.repeat(np.clip(y, -32768, 32767), 2, axis=1))
    assert stats.clipped == 2 * clipped  # a mono source on both slots: each wire sample counts
    assert (clipped > 0) == (gain_db > 0)


def test_gain_on_24_bit_file_to_32_bit_bus(tmp_path):
    s = source_ints(24, N, 2, seed=4)
    write_int_file(tmp_path / "g.wav", s, 24)
    stats = ConvertStats()
    got = play(tmp_path / "g.wav", BusFormat(48000, 32, 2), gain_db=-3.0, stats=stats)
    np.testing.assert_array_equal(got, np.rint((s << 8) * 10 ** (-3 / 20)).astype(np.int64))
    assert stats.clipped == 0


def test_resample_44100_to_48000(tmp_path):
    rate = 44100
    k = np.arange(rate)
    x = 0.5 * np.sin(2 * np.pi * 1000 * k / rate)
    sf.write(tmp_path / "s.wav", np.stack([x, -x], axis=1), rate, subtype="PCM_16")
    bus = BusFormat(48000, 32, 2)
    with open_input(str(tmp_path / "s.wav")) as inp:
        stats = ConvertStats()
        got = wire_to_array(b"".join(play_blocks(inp, bus, block_frames=1000, stats=stats)), bus)
        assert abs(inp.bus_frames(bus) - 48000) <= 1
    assert abs(len(got) - 48000) <= 1 and stats.frames == len(got) and stats.input_frames == rate
    spectrum = np.abs(np.fft.rfft(got[:48000, 0] / 2**31))
    assert abs(np.argmax(spectrum) * 48000 / 48000 - 1000) <= 1  # 1 Hz bins
    assert 20 * math.log10(np.abs(got[1000:47000]).max() / 2**31) == pytest.approx(-6.02, abs=0.1)
    np.testing.assert_allclose(got[:, 1], -got[:, 0], atol=3 << 16)  # the file's PCM_16 rounding of -x


def test_multichannel_needs_a_map(tmp_path):
    s = source_ints(16, N, 4, seed=8)
    write_int_file(tmp_path / "m.wav", s, 16)
    with pytest.raises(AudioError, match=r"4 channels.*a channels map \(e\.g\. 0,1\)") as e:
        open_input(str(tmp_path / "m.wav"))
    assert cli_words(e.value).endswith("choose one or two with --channels-map (e.g. 0,1)")  # the command line's
    bus = BusFormat(48000, 16, 2)
    np.testing.assert_array_equal(play(tmp_path / "m.wav", bus, [2, 0]), s[:, [2, 0]])
    np.testing.assert_array_equal(play(tmp_path / "m.wav", bus, [3]), s[:, [3, 3]])
    np.testing.assert_array_equal(play(tmp_path / "m.wav", BusFormat(48000, 16, 1), [1, 2]), s[:, [1]])
    for bad in ([4], [0, -1], [0, 1, 2], []):
        with pytest.raises(AudioError):
            open_input(str(tmp_path / "m.wav"), bad)
    assert parse_channels_map("1,0") == [1, 0]
    with pytest.raises(AudioError):
        parse_channels_map("a,b")


def test_map_picks_the_right_channel_of_a_stereo_file(tmp_path):
    s = source_ints(16, N, 2)
    write_int_file(tmp_path / "s.wav", s, 16)
    with open_input(str(tmp_path / "s.wav"), [1]) as inp:
        assert (inp.channels, inp.file_channels) == (1, 2)
    np.testing.assert_array_equal(play(tmp_path / "s.wav", BusFormat(48000, 16, 1), [1]), s[:, [1]])


def test_input_errors_are_one_line(tmp_path):
    (tmp_path / "text.wav").write_text("hello, not audio\n" * 10)
    (tmp_path / "empty.wav").write_bytes(b"")
    write_int_file(tmp_path / "ok.wav", source_ints(16, 100, 2), 16)
    (tmp_path / "cut.wav").write_bytes((tmp_path / "ok.wav").read_bytes()[:20])
    sf.write(tmp_path / "zero.wav", np.zeros((0, 2), np.int16), 48000)
    cases = {
        "missing.wav": "no such file", ".": "directory", "text.wav": "not a readable audio file",
        "empty.wav": "empty", "cut.wav": "not a readable audio file", "zero.wav": "no audio",
    }
    for name, words in cases.items():
        with pytest.raises(AudioError, match=words) as e:
            open_input(str(tmp_path / name))
        assert "\n" not in str(e.value)


def test_truncated_data_plays_what_is_there(tmp_path):
    s = source_ints(16, N, 2)
    write_int_file(tmp_path / "ok.wav", s, 16)
    (tmp_path / "cut.wav").write_bytes((tmp_path / "ok.wav").read_bytes()[: 44 + 4 * 1000 + 2])
    np.testing.assert_array_equal(play(tmp_path / "cut.wav", BusFormat(48000, 16, 2)), s[:1000])


def test_stdin_in_process(tmp_path):
    s = source_ints(24, N, 2)
    write_int_file(tmp_path / "x.flac", s, 24)
    with open_input("-", stdin=io.BytesIO((tmp_path / "x.flac").read_bytes())) as inp:
        assert (inp.frames, inp.format, inp.name) == (N, "FLAC", "standard input")
        data = b"".join(play_blocks(inp, BusFormat(48000, 32, 2)))
    np.testing.assert_array_equal(wire_to_array(data, BusFormat(48000, 32, 2)), s << 8)
    with pytest.raises(AudioError, match="standard input"):
        open_input("-", stdin=io.BytesIO(b""))


def test_stdin_from_a_pipe(tmp_path):
    s = source_ints(16, 3 * N, 2)
    write_int_file(tmp_path / "x.wav", s, 16)
    script = ("import sys; from i2scli.audio import *\n"
              "with open_input('-') as inp:\n"
              "    [sys.stdout.buffer.write(b) for b in play_blocks(inp, BusFormat(48000, 16, 2))]\n")
    out = subprocess.run([sys.executable, "-c", script], input=(tmp_path / "x.wav").read_bytes(),
                         capture_output=True, env=ENV, timeout=60, check=True).stdout
    np.testing.assert_array_equal(wire_to_array(out, BusFormat(48000, 16, 2)), s)


# --- tone and levels ---------------------------------------------------------------------------


def test_tone_is_phase_continuous_and_right():
    bus = BusFormat(48000, 16, 2)
    whole = b"".join(tone_blocks(1000, bus, frames=48000, block_frames=48000))
    assert whole == b"".join(tone_blocks(1000, bus, frames=48000, block_frames=777))
    x = wire_to_array(whole, bus).astype(np.int64)
    assert len(x) == 48000 and (x[:, 0] == x[:, 1]).all()
    k = np.arange(48000)
    np.testing.assert_array_equal(x[:, 0], np.rint(10 ** (-6 / 20) * np.sin(2 * np.pi * 1000 * k / 48000) * 32767))
    odd = wire_to_array(b"".join(tone_blocks(997.5, BusFormat(44100, 32, 1), frames=44100, block_frames=1000)),
                        BusFormat(44100, 32, 1))
    spectrum = np.abs(np.fft.rfft(odd[:, 0] / 2**31, n=4 * 44100))
    assert np.argmax(spectrum) / 4 == pytest.approx(997.5, abs=0.25)


def test_levels():
    bus = BusFormat(48000, 16, 2)
    lv = Levels(bus)
    assert lv.summary()["channels"][0] == {"peak_dbfs": None, "rms_dbfs": None, "clipped": 0}
    left = np.concatenate([[32767, -32768, -32768], np.full(997, 16384)])
    x = np.stack([left, np.zeros(1000)], axis=1).astype("<i2")
    lv.feed(x.tobytes(), now=0.0)
    s = lv.summary()
    json.dumps(s)
    assert s["frames"] == 1000 and s["clipped"] == 3
    c0, c1 = s["channels"]
    assert c0["peak_dbfs"] == 0.0 and c0["clipped"] == 3
    rms = math.sqrt((32767**2 + 2 * 32768**2 + 997 * 16384**2) / 1000) / 32768
    assert c0["rms_dbfs"] == round(20 * math.log10(rms), 2)
    assert c1 == {"peak_dbfs": None, "rms_dbfs": None, "clipped": 0}

    tone = Levels(BusFormat(48000, 32, 1))
    tone.feed(b"".join(tone_blocks(1000, tone.bus, frames=48000, dbfs=-6.0)), now=0.0)
    assert tone.peak_dbfs()[0] == pytest.approx(-6.0, abs=0.01)
    assert tone.rms_dbfs()[0] == pytest.approx(-6.0 - 3.01, abs=0.01)


def test_levels_peak_hold():
    bus = BusFormat(48000, 16, 1)
    lv = Levels(bus, hold=3.0)
    loud, quiet = np.full((10, 1), 16384, np.int16), np.full((10, 1), 1638, np.int16)
    lv.feed(loud, now=10.0)
    lv.feed(quiet, now=11.0)
    assert lv.held_peak_dbfs(now=12.9)[0] == pytest.approx(-6.02, abs=0.01)
    assert lv.held_peak_dbfs(now=13.1)[0] == pytest.approx(-26.02, abs=0.01)
    lv.feed(quiet, now=13.5)
    assert lv.held_peak_dbfs(now=13.5)[0] == pytest.approx(-26.02, abs=0.01)
    assert lv.peak_dbfs()[0] == pytest.approx(-6.02, abs=0.01)


# --- wire -> file ------------------------------------------------------------------------------


def wire_source(bus: BusFormat, frames: int, seed: int = 0) -> np.ndarray:
    x = source_ints(bus.bits, frames, bus.channels, seed)
    return x.astype(bus.dtype)


def expected_file_int32(w: np.ndarray, bits: int, subtype: str) -> np.ndarray:
    """What reading the recording back as int32 gives: the top `depth` bits of each slot, left-justified."""
    depth = int(subtype[4:])
    left = w.astype(np.int64) << (32 - bits)
    return (left >> (32 - depth)) << (32 - depth)


@pytest.mark.parametrize("bus", BUSES, ids=BusFormat.describe)
@pytest.mark.parametrize("ext,subtype", [
    ("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "PCM_32"), ("flac", "PCM_16"), ("flac", "PCM_24"),
    ("rf64", "PCM_24"), ("rf64", "PCM_32"), ("w64", "PCM_32"),
])
def test_output_round_trip(tmp_path, bus, ext, subtype):
    w = wire_source(bus, N, seed=bus.bits)
    data = w.tobytes()
    path = tmp_path / f"out.{ext}"
    with open_output(str(path), bus, subtype=subtype) as out:
        cuts = [0, 1, 3 * bus.frame_bytes + 1, 1000, len(data)]  # partial frames carried over
        for a, b in zip(cuts, cuts[1:]):
            out.write(data[a:b])
        assert out.frames == N
    info = sf.info(str(path))
    assert (info.subtype, info.channels, info.samplerate, info.frames) == (subtype, bus.channels, bus.rate, N)
    back, _ = sf.read(str(path), dtype="int32", always_2d=True)
    np.testing.assert_array_equal(back, expected_file_int32(w, bus.bits, subtype))


def test_output_defaults_and_refusals(tmp_path):
    b16, b32 = BusFormat(48000, 16, 2), BusFormat(48000, 32, 2)
    for name, bus, subtype in [("a.wav", b16, "PCM_16"), ("b.wav", b32, "PCM_32"), ("c.flac", b32, "PCM_24"),
                               ("d.rf64", b32, "PCM_32"), ("e.W64", b16, "PCM_16")]:
        with open_output(str(tmp_path / name), bus) as out:
            assert out.subtype == subtype
            out.write(np.zeros((10, 2), bus.dtype))
        assert sf.info(str(tmp_path / name)).subtype == subtype
    with pytest.raises(AudioError, match=r"\.wav, \.flac, \.rf64, \.w64"):
        open_output(str(tmp_path / "x.mp3"), b16)
    with pytest.raises(AudioError, match="at most 24 bits"):
        open_output(str(tmp_path / "x.flac"), b32, subtype="PCM_32")
    with pytest.raises(AudioError, match="PCM_16, PCM_24, PCM_32"):
        open_output(str(tmp_path / "x.wav"), b32, subtype="FLOAT")
    with pytest.raises(AudioError, match="does not exist"):
        open_output(str(tmp_path / "nope" / "x.wav"), b16)
    with pytest.raises(AudioError, match="is not a directory"):
        check_output_path(str(tmp_path / "a.wav" / "x.wav"))
    (tmp_path / "dir.wav").mkdir()
    with pytest.raises(AudioError, match="is a directory"):
        check_output_path(str(tmp_path / "dir.wav"))
    (tmp_path / "adir").mkdir()  # no extension: still said to be a directory, not a format
    with pytest.raises(AudioError, match="adir: is a directory$"):
        check_output_path(str(tmp_path / "adir"))
    with pytest.raises(AudioError, match="adir: is a directory$"):
        check_writable(str(tmp_path / "adir"))
    with pytest.raises(AudioError, match="does not exist"):
        check_writable(str(tmp_path / "nope" / "report.xml"))
    check_writable(str(tmp_path / "report.xml"))  # any name: a JUnit report, a plot
    check_output_path("-")
    check_output_path(str(tmp_path / "fine.flac"))
    assert not (tmp_path / "nope").exists() and not (tmp_path / "x.flac").exists()


def test_empty_recording_is_valid(tmp_path):
    with open_output(str(tmp_path / "e.wav"), BusFormat(48000, 32, 2)):
        pass
    assert sf.info(str(tmp_path / "e.wav")).frames == 0


class _Pipe(io.RawIOBase):
    """A write-only, non-seekable stream like a pipe."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self):
        return True

    def write(self, b):
        self.buf += b
        return len(b)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32"])
@pytest.mark.parametrize("seekable", [False, True])
def test_stdout_wav(tmp_path, subtype, seekable):
    bus = BusFormat(48000, 32, 2)
    w = wire_source(bus, N, seed=2)
    stream = io.BytesIO() if seekable else _Pipe()
    with open_output("-", bus, subtype=subtype, stdout=stream) as out:
        out.write(w[:1234].tobytes())
        out.write(w[1234:].tobytes())
    raw = stream.getvalue() if seekable else bytes(stream.buf)
    (tmp_path / "o.wav").write_bytes(raw)
    assert int.from_bytes(raw[40:44], "little") == (N * 2 * int(subtype[4:]) // 8 if seekable else 0xFFFFFFFF)
    back, rate = sf.read(str(tmp_path / "o.wav"), dtype="int32", always_2d=True)
    assert rate == 48000
    np.testing.assert_array_equal(back, expected_file_int32(w, 32, subtype))


def test_stdout_wav_from_a_process(tmp_path):
    bus = BusFormat(44100, 16, 1)
    w = wire_source(bus, N, seed=7)
    script = ("import sys; from i2scli.audio import *\n"
              "bus = BusFormat(44100, 16, 1)\n"
              "with open_output('-', bus) as out:\n"
              "    while block := sys.stdin.buffer.read(1001):\n"
              "        out.write(block)\n")
    out = subprocess.run([sys.executable, "-c", script], input=w.tobytes(), capture_output=True, env=ENV,
                         timeout=60, check=True).stdout
    (tmp_path / "o.wav").write_bytes(out)
    back, rate = sf.read(str(tmp_path / "o.wav"), dtype="int16", always_2d=True)
    assert rate == 44100
    np.testing.assert_array_equal(back, w)


KILLED_WRITER = """
import sys, time
import numpy as np
from i2scli.audio import BusFormat, open_output
bus = BusFormat(48000, 32, 2)
data = np.random.default_rng(11).integers(-2**31, 2**31, size=(3 * 48000, 2)).astype('<i4')
out = open_output(sys.argv[1], bus)
print('ready', flush=True)
for i in range(30):
    out.write(data[i * 4800:(i + 1) * 4800].tobytes())
    time.sleep(0.1)
out.close()
print('finished', flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("ext", ["wav", "rf64"])
def test_sigkilled_recording_is_readable(tmp_path, ext):
    path = tmp_path / f"killed.{ext}"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, env=ENV)
    try:
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(1.5)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    data = np.random.default_rng(11).integers(-2**31, 2**31, size=(3 * 48000, 2)).astype("<i4")
    back, rate = sf.read(str(path), dtype="int32", always_2d=True)
    assert rate == 48000 and 48000 <= len(back) < len(data)
    np.testing.assert_array_equal(back, data[: len(back)])


def test_fifo_input_is_spooled(tmp_path):
    import threading

    s = source_ints(16, N, 2)
    write_int_file(tmp_path / "x.wav", s, 16)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=lambda: fifo.write_bytes((tmp_path / "x.wav").read_bytes()))
    feeder.start()
    try:
        np.testing.assert_array_equal(play(fifo, BusFormat(48000, 16, 2)), s)
    finally:
        feeder.join(timeout=10)


def test_lossy_file_takes_the_float_path(tmp_path):
    k = np.arange(48000)
    sf.write(tmp_path / "v.ogg", 0.5 * np.sin(2 * np.pi * 1000 * k / 48000), 48000, format="OGG", subtype="VORBIS")
    with open_input(str(tmp_path / "v.ogg")) as inp:
        assert not inp.integer and inp.format == "OGG"
        stats = ConvertStats()
        x = wire_to_array(b"".join(play_blocks(inp, BusFormat(48000, 16, 2), stats=stats)), BusFormat(48000, 16, 2))
    assert len(x) == 48000 and stats.peak_dbfs()[0] == pytest.approx(-6.0, abs=1.0)
    assert np.argmax(np.abs(np.fft.rfft(x[:, 0]))) == 1000


# --- a full disk -------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["wav", "rf64", "w64"])
def test_full_disk_keeps_what_fit(small_disk, ext):
    """A real full filesystem (64 kB): the error says so, and the file keeps every sample that
    fit, its header covering them."""
    bus = BusFormat(48000, 32, 2)
    w = wire_source(bus, 20000, seed=3)  # 160 kB: more than the disk holds
    path = small_disk / f"rec.{ext}"
    out = open_output(str(path), bus)
    with pytest.raises(AudioError) as caught:
        for start in range(0, len(w), 1000):
            out.write(w[start:start + 1000].tobytes())
    message = str(caught.value)
    kept = out.frames
    assert message.startswith(f"{path}: no space left on the device;"), message
    assert f"keeps the {kept} frames" in message and "\n" not in message
    out.sync()  # what a recording does when it ends on an error
    out.close()
    info = sf.info(str(path))
    assert info.frames == kept and 4000 < kept < 8192  # nearly 64 kB of 8-byte frames
    back, _ = sf.read(str(path), dtype="int32", always_2d=True)
    np.testing.assert_array_equal(back, w[:kept])


def test_full_disk_on_standard_output(small_disk):
    """`i2s record -` with stdout redirected to a file on a full disk."""
    bus = BusFormat(48000, 16, 2)
    w = wire_source(bus, 40000, seed=4)
    stream = open(small_disk / "o.wav", "wb")  # buffered, as sys.stdout.buffer is
    try:
        out = open_output("-", bus, stdout=stream)
        with pytest.raises(AudioError, match="^cannot write to standard output: no space left on the device$"):
            for start in range(0, len(w), 1000):
                out.write(w[start:start + 1000].tobytes())
    finally:
        with contextlib.suppress(OSError):  # the buffer's last bytes do not fit either
            stream.close()


def test_dev_full_as_standard_output():
    """/dev/full: ENOSPC on every write, with no privileges needed (stdout is not seekable there)."""
    bus = BusFormat(48000, 16, 2)
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    with open("/dev/full", "wb", buffering=0) as stream:
        with pytest.raises(AudioError, match="^cannot write to standard output: no space left on the device$"):
            out = open_output("-", bus, stdout=stream)
            out.write(np.zeros((100, 2), np.int16))
            out.close()


def test_the_stop_rule_record_and_duplex_share():
    from i2scli.audio import BusFormat
    from i2scli.session import RecordStop, StopRule

    bus = BusFormat(1000, 16, 1)
    loud, quiet = np.full((10, 1), 20000, np.int16), np.zeros((10, 1), np.int16)
    rule = StopRule(RecordStop(stop_on_silence=0.025, wait_for_sound=True), bus)
    assert len(rule.take(quiet)) == 0 and rule.discarded == 10  # waiting for sound
    block = np.concatenate([quiet[:4], loud[:6]])
    assert len(rule.take(block)) == 6 and rule.discarded == 14  # from the first loud frame on
    assert len(rule.take(quiet)) == 10 and not rule.done  # 10 frames of silence of the 25
    assert len(rule.take(quiet)) == 10 and not rule.done
    assert len(rule.take(quiet)) == 10 and rule.done and rule.kept == 36
    assert len(rule.take(loud)) == 0  # done: nothing more is kept
    rule = StopRule(RecordStop(frames=15), bus)
    assert len(rule.take(loud)) == 10 and len(rule.take(loud)) == 5 and rule.done and rule.kept == 15
