"""Streams, not files: pipes into `i2s play` and out of `i2s record`, through the real command line
on virtual boards, fed and read by real tools (sox) where they are installed."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ENV, I2S, i2s

from i2scli.sim.wire import ramp_samples

SOX = shutil.which("sox")
needs_sox = pytest.mark.skipif(SOX is None, reason="sox is not installed (Debian package sox; .ci/run installs it)")
FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None,
                                  reason="ffmpeg is not installed (Debian package ffmpeg; .ci/run installs it)")


def _played(capture: Path, dtype: str) -> np.ndarray:
    """What the TX capture holds from the first sample played on (the zeros clocked before the
    first write cut off; the sources below start with a non-zero frame)."""
    c = sf.read(str(capture), dtype=dtype, always_2d=True)[0]
    nz = np.flatnonzero(c.any(axis=1))
    assert len(nz), "nothing was played"
    return c[nz[0]:]


def _assert_played(capture: Path, ref: np.ndarray) -> None:
    got = _played(capture, ref.dtype.name)
    assert len(got) >= len(ref)
    np.testing.assert_array_equal(got[:len(ref)], ref)
    assert not got[len(ref):].any()  # then only the silence that plays the ring out


def _sox(*args) -> bytes:
    """sox's output on a pipe (-D: no dither, so that two runs agree)."""
    r = subprocess.run([SOX, "-D", "-n", *args], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


SYNTH = ["synth", "2", "sine", "440", "sine", "1000", "vol", "0.5", "dcshift", "0.01"]  # no zero frame at the start


def _sox_pipe_into_play(sox_args: list[str], play_args: list[str], capture: Path) -> subprocess.CompletedProcess:
    """`sox ... - | i2s play ... -`, a real pipe between the two processes."""
    sox = subprocess.Popen([SOX, "-D", "-n", *sox_args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        r = subprocess.run([*I2S, "play", "-q", "-p", f"sim://fast?tx_capture={capture}", *play_args, "-"],
                           stdin=sox.stdout, capture_output=True, text=True, timeout=120, env=ENV)
    finally:
        sox.stdout.close()
        sox.wait(timeout=30)
    assert "Traceback" not in r.stderr, r.stderr
    return r


@needs_sox
@pytest.mark.parametrize("bits,dtype", [(16, "int16"), (24, "int32"), (32, "int32")])
def test_sox_streaming_wav_through_a_pipe_is_bit_exact(tmp_path, bits, dtype):
    """sox writes a WAV to a pipe with a length it cannot know (its header says so); it plays as
    it comes, every sample as sox computed it (the same synth written raw is the reference)."""
    ref = _sox_ref(bits)
    cap = tmp_path / "tx.wav"
    r = _sox_pipe_into_play(["-t", "wav", "-r", "16000", "-c", "2", "-b", str(bits), "-", *SYNTH], [], cap)
    assert r.returncode == 0, r.stderr
    _assert_played(cap, ref.astype(dtype))


def _sox_ref(bits: int) -> np.ndarray:
    """The synth as sox writes it raw, little-endian signed, as the bus carries it (frames, 2)."""
    data = _sox("-t", "raw", "-r", "16000", "-c", "2", "-b", str(bits), "-e", "signed-integer", "-", *SYNTH)
    return _widen(np.frombuffer(data, {16: "<i2", 24: "u1", 32: "<i4"}[bits]), bits).reshape(-1, 2)


def _widen(raw: np.ndarray, bits: int) -> np.ndarray:
    """Raw little-endian samples of `bits` as the bus carries them: 16 as is, 24 and 32
    left-justified in 32."""
    if bits == 24:
        b = raw.reshape(-1, 3).astype(np.int32)
        return (b[:, 0] << 8 | b[:, 1] << 16 | b[:, 2] << 24).astype(np.int32)
    return raw


RAW_CASES = [
    # sox's flags as sox writes them, the same flags to i2s; aplay's -f for the same bytes
    (["-b", "16", "-e", "signed-integer"], ["-t", "raw", "-r", "16000", "-c", "2", "-b", "16", "-e",
                                            "signed-integer"], 16),
    (["-b", "16", "-e", "signed-integer"], ["-f", "S16_LE", "-r", "16000", "-c", "2"], 16),
    (["-b", "16", "-e", "signed-integer", "-B"], ["-t", "raw", "-r", "16000", "-c", "2", "-b", "16",
                                                  "--endian", "big"], 16),
    (["-b", "24", "-e", "signed-integer"], ["-t", "raw", "-r", "16000", "-c", "2", "-b", "24"], 24),
    (["-b", "32", "-e", "signed-integer"], ["-f", "S32_LE", "-r", "16000", "-c", "2"], 32),
]


@needs_sox
@pytest.mark.parametrize("sox_fmt,play_fmt,bits", RAW_CASES, ids=[" ".join(c[1]) for c in RAW_CASES])
def test_raw_pcm_from_sox_through_a_pipe_is_bit_exact(tmp_path, sox_fmt, play_fmt, bits):
    ref = _sox_ref(bits)
    cap = tmp_path / "tx.wav"
    r = _sox_pipe_into_play(["-t", "raw", "-r", "16000", "-c", "2", *sox_fmt, "-", *SYNTH], play_fmt, cap)
    assert r.returncode == 0, r.stderr
    _assert_played(cap, ref.astype("int16" if bits == 16 else "int32"))


#: two of ffmpeg's own sine sources, 440 Hz left and 1000 Hz right (a swapped channel shows), 0.6 s at 16 kHz
FF_SINES = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=0.6", "-f", "lavfi", "-i",
            "sine=frequency=1000:sample_rate=16000:duration=0.6", "-filter_complex", "amerge=inputs=2"]


def _ffmpeg(*out: str, stdout=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([FFMPEG, "-nostdin", "-loglevel", "error", *FF_SINES, *out, "-"], stdout=stdout,
                            stderr=subprocess.DEVNULL)


def _ffmpeg_ref(codec: str, dtype: str) -> np.ndarray:
    """The same sines as ffmpeg writes them raw (frames, 2), from its first non-zero frame on (a
    sine starts at 0, and the capture is compared from the first sample played)."""
    p = _ffmpeg("-f", codec)
    data, _ = p.communicate(timeout=60)
    x = np.frombuffer(data, dtype).reshape(-1, 2)
    return x[np.flatnonzero(x.any(axis=1))[0]:]


@needs_ffmpeg
@pytest.mark.slow
@pytest.mark.parametrize("args,ref", [
    (["-f", "wav"], ("s16le", "<i2")),  # a WAV of unknown length (0xFFFFFFFF sizes, and a LIST chunk first)
    (["-c:a", "pcm_s32le", "-f", "wav"], ("s32le", "<i4")),
    (["-f", "s16le"], ("s16le", "<i2")),  # raw PCM, described by -f S16_LE
], ids=["wav", "wav-s32", "s16le"])
def test_ffmpeg_into_play_through_a_pipe_is_bit_exact(tmp_path, args, ref):
    """ffmpeg's own sources, written into a real pipe as a streaming WAV or as raw PCM, play as
    they come: the samples on the virtual board's pins are ffmpeg's, bit for bit, each tone on
    its channel at its frequency and level."""
    want = _ffmpeg_ref(*ref)
    cap = tmp_path / "tx.wav"
    ff = _ffmpeg(*args)
    raw = ["-f", "S16_LE", "-r", "16000", "-c", "2"] if args[-1] == "s16le" else []
    try:
        r = subprocess.run([*I2S, "play", "-q", "-p", f"sim://fast?tx_capture={cap}", *raw, "-"], stdin=ff.stdout,
                           capture_output=True, text=True, timeout=120, env=ENV)
    finally:
        ff.stdout.close()
        ff.wait(timeout=30)
    assert r.returncode == 0 and ff.returncode == 0, r.stderr
    got = _played(cap, want.dtype.name)
    np.testing.assert_array_equal(got[:len(want)], want)
    assert not got[len(want):].any()
    full = 2.0 ** (8 * want.dtype.itemsize - 1)
    for ch, f in enumerate((440, 1000)):  # (ffmpeg's sine: 1/8 of full scale)
        x = got[1600:5600, ch] / full  # a quarter of a second: bins of 4 Hz
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        assert int(spectrum.argmax()) * 4 == f and abs(np.abs(x).max() - 0.125) < 0.001


def _wav_header(rate: int, channels: int, data_size: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    riff = 0 if data_size == 0 else 0xFFFFFFFF
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data"
            + struct.pack("<I", data_size))


@pytest.mark.parametrize("data_size", [0, 0xFFFFFFFF])
def test_a_wav_of_unknown_length_from_a_pipe_plays_whole(tmp_path, data_size):
    """The sizes streaming writers put when they cannot seek back (0, or 0xFFFFFFFF as ffmpeg
    and sox do): read to the end of the stream."""
    x = (np.arange(1, 2 * 9000 + 1, dtype=np.int64) * 7 % 65536 - 32768).astype(np.int16).reshape(-1, 2)
    x[0] = (5, 6)
    cap = tmp_path / "tx.wav"
    r = subprocess.run([*I2S, "play", "-q", "-p", f"sim://fast?tx_capture={cap}", "-"],
                       input=_wav_header(8000, 2, data_size) + x.astype("<i2").tobytes(), capture_output=True,
                       timeout=60, env=ENV)
    assert r.returncode == 0, r.stderr
    _assert_played(cap, x)


def _events(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


def test_a_live_source_plays_before_it_ends(sim, tmp_path):
    """A live source (audio written in real time, as a microphone or a synthesiser does, for
    longer than it takes to start) is on the pins before it has ended: the board's TX session
    starts, and its first sample is clocked, before the source's last write (the board's
    clock and the source's are the same monotonic clock). Everything it wrote is played.
    `--no-live`: a live source's reserve can run low on a loaded host, and auto mode then starts
    matching clocks, i.e. resampling (tests/e2e/test_sound_server.py); this test is about
    streaming, bit-exact."""
    board = sim("fast")
    proc = subprocess.Popen([*I2S, "play", "-q", "--no-live", "-p", board.path, "-"], stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV, bufsize=0)
    rate, block, seconds = 16000, 800, 8
    written: list[np.ndarray] = []
    times: list[float] = []

    def feed():
        proc.stdin.write(_wav_header(rate, 2, 0xFFFFFFFF))
        t0 = time.monotonic()
        for k in range(0, rate * seconds, block):
            time.sleep(max(0.0, t0 + k / rate - time.monotonic()))  # a live source's pace
            n = np.arange(k, k + block, dtype=np.int64)
            x = np.stack([n % 30000 + 1, -(n % 20000) - 1], axis=1).astype(np.int16)
            proc.stdin.write(x.astype("<i2").tobytes())
            times.append(time.monotonic())
            written.append(x)
        proc.stdin.close()

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    t.join(timeout=seconds + 60)
    proc.wait(timeout=60)
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    board.stop()
    tx = next(e for e in board.events() if e["ev"] == "i2s_init" and e["mode"] == "tx")
    c = sf.read(board.files["tx"], dtype="int16", always_2d=True)[0]
    first_sample_s = (tx["t_us"] + np.flatnonzero(c.any(axis=1))[0] * 1e6 / rate) / 1e6
    print(f"first sample on the pins {first_sample_s - times[0]:.3f} s after the first audio written")
    assert first_sample_s < times[-1] - 1.0, (first_sample_s - times[0], times[-1] - times[0])
    _assert_played(Path(board.files["tx"]), np.concatenate(written))


def test_raw_record_is_the_wav_record_without_its_header(tmp_path):
    """The same audio (the board's counting ramp) recorded as raw PCM into a pipe and as a
    WAV file: the same samples, bit for bit."""
    frames = 12000
    args = ["record", "-q", "-p", "sim://fast?rx_source=ramp", "-r", "16000", "-b", "32", "-c", "2", "-s", frames]
    r = subprocess.run([*I2S, *map(str, args), "-t", "raw", "--subtype", "PCM_24", "-"], capture_output=True,
                       timeout=60, env=ENV)
    assert r.returncode == 0, r.stderr
    wav = tmp_path / "r.wav"
    i2s(*args, "--subtype", "PCM_24", wav, check=0)
    from_file = sf.read(str(wav), dtype="int32")[0]
    raw = _widen(np.frombuffer(r.stdout, np.uint8), 24).reshape(-1, 2)
    np.testing.assert_array_equal(raw, from_file)
    np.testing.assert_array_equal(raw, ramp_samples(0, frames, 32, 2))


def test_raw_pcm_played_from_a_pipe_is_the_file_played(tmp_path):
    """The same audio as a raw pipe and as a WAV file: the same samples on the pins."""
    x = ((np.arange(2 * 6000, dtype=np.int64) * 40503) % 65536 - 32768).astype(np.int16).reshape(-1, 2)
    x[0] = (1, 2)
    wav = tmp_path / "x.wav"
    sf.write(str(wav), x, 16000, subtype="PCM_16")
    caps = [tmp_path / "file.wav", tmp_path / "pipe.wav"]
    i2s("play", "-q", "-p", f"sim://fast?tx_capture={caps[0]}", wav, check=0)
    r = subprocess.run([*I2S, "play", "-q", "-p", f"sim://fast?tx_capture={caps[1]}", "-f", "S16_LE", "-r", "16000",
                        "-c", "2", "-"], input=x.astype("<i2").tobytes(), capture_output=True, timeout=60, env=ENV)
    assert r.returncode == 0, r.stderr
    for cap in caps:
        _assert_played(cap, x)


def test_a_reader_that_goes_away_ends_the_recording_cleanly(sim):
    """`i2s record - | head -c N`: exit 0, nothing said (-q), the stream stopped on the board and
    the board at its REPL: the next command on it works."""
    board = sim("fast", capture=False)
    pipeline = (f"set -o pipefail; {' '.join(I2S)} record -q -p {board.path} -r 48000 -b 32 -c 2 -d 5s - "
                f"| head -c 100000 | wc -c")
    t0 = time.monotonic()
    r = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True, timeout=60, env=ENV)
    assert r.returncode == 0 and r.stdout.strip() == "100000", (r.returncode, r.stdout, r.stderr)
    assert r.stderr == ""
    assert time.monotonic() - t0 < 5 + 30  # it did not wait for -d 5s to pass... nor hang
    after = subprocess.run([*I2S, "record", "-q", "-p", board.path, "-r", "16000", "-b", "16", "-c", "1", "-s",
                            "1600", "-t", "raw", "-"], capture_output=True, timeout=60, env=ENV)
    assert after.returncode == 0 and len(after.stdout) == 1600 * 2, after.stderr
    board.stop()
    rx = [e for e in board.events() if e["ev"] in ("i2s_init", "i2s_deinit")]
    assert [e["ev"] for e in rx] == ["i2s_init", "i2s_deinit"] * 2
    assert rx[1]["frames"] < 48000 * 5  # the first stream stopped on the board before its 5 s


def test_a_reader_that_goes_away_says_one_line(tmp_path):
    r = subprocess.run(["bash", "-c", f"set -o pipefail; {' '.join(I2S)} record -p sim://fast?rx_source=ramp "
                                      f"-r 48000 -b 16 -c 2 -d 5s - | head -c 1000 >/dev/null"],
                       capture_output=True, text=True, timeout=60, env=ENV)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and "Broken" not in r.stderr, r.stderr
    # the settings line, then the summary, which says why it ended
    assert len(lines) == 2 and "ended by its reader" in lines[1], lines


def test_a_slow_reader_costs_counted_overruns(tmp_path, sim):
    """A reader that stops reading for longer than the backlog: the link never waits for it, the
    blocks past the backlog are dropped and counted, and every frame is accounted for: what
    reached the reader plus what was lost is what was recorded."""
    board = sim("fast", "--rx-source", "ramp", capture=False)
    fifo = tmp_path / "rec.fifo"
    os.mkfifo(fifo)
    frames = 16000 * 6
    proc = subprocess.Popen([*I2S, "record", "-p", board.path, "-r", "16000", "-b", "32", "-c", "2", "-s",
                             str(frames), "--json", "-t", "raw", str(fifo)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    with open(fifo, "rb") as reader:
        first = reader.read(8)
        time.sleep(4.5)  # the reader stalls for longer than the backlog (2 s) and the pipe hold
        got = first + reader.read()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    s = json.loads(out)
    assert s["output_overruns"] >= 1 and s["output_lost_frames"] > 0
    assert s["overruns"] >= s["output_overruns"] and s["lost_frames"] >= s["output_lost_frames"]
    assert len(got) == s["frames"] * 8
    assert s["frames"] + s["output_lost_frames"] == frames
    # what arrived is the ramp, with whole blocks missing where the reader was too slow
    x = np.frombuffer(got, "<i4").reshape(-1, 2)
    ramp = ramp_samples(0, frames, 32, 2)
    np.testing.assert_array_equal(x[:1000], ramp[:1000])


FORMATS = [  # aplay's -f, and the same audio as a file libsndfile writes
    ("S24_LE", "PCM_24"), ("S24_3BE", "PCM_24"), ("FLOAT_LE", "FLOAT"), ("U8", "PCM_U8"), ("S16_BE", "PCM_16"),
]


def _raw_bytes(x: np.ndarray, fmt: str) -> bytes:
    """`x` (float in [-1, 1), on the grid of the format) as aplay's `fmt` lays it out."""
    if fmt == "FLOAT_LE":
        return x.astype("<f4").tobytes()
    if fmt == "U8":
        return (np.round(x * 128) + 128).astype(np.uint8).tobytes()
    if fmt == "S16_BE":
        return np.round(x * 32768).astype(">i2").tobytes()
    v = np.round(x * (1 << 23)).astype(np.int64)
    if fmt == "S24_LE":  # 24 bits in the low three bytes of four, sign-extended
        return v.astype("<i4").tobytes()
    b = (v & 0xFFFFFF).astype(">u4").view(np.uint8).reshape(-1, 4)[:, 1:]  # S24_3BE
    return b.tobytes()


@pytest.mark.parametrize("fmt,subtype", FORMATS)
def test_raw_formats_play_as_the_same_audio_in_a_file(tmp_path, fmt, subtype):
    """Each raw layout, from a pipe, puts on the pins exactly what the same audio does from a
    file of the matching sample format."""
    k = np.arange(4000)
    x = np.stack([0.5 * np.sin(k / 7), 0.25 * np.cos(k / 11)], axis=1) + 0.01
    step = {"U8": 1 / 128, "S16_BE": 1 / 32768}.get(fmt, 1 / (1 << 23))
    x = np.round(x / step) * step
    wav = tmp_path / "x.wav"
    sf.write(str(wav), x, 16000, subtype=subtype)
    caps = [tmp_path / "file.wav", tmp_path / "pipe.wav"]
    i2s("play", "-q", "-p", f"sim://fast?tx_capture={caps[0]}", wav, check=0)
    r = subprocess.run([*I2S, "play", "-q", "-p", f"sim://fast?tx_capture={caps[1]}", "-f", fmt, "-r", "16000",
                        "-c", "2", "-"], input=_raw_bytes(x.reshape(-1), fmt), capture_output=True, timeout=60,
                       env=ENV)
    assert r.returncode == 0, r.stderr
    dtype = "int16" if subtype in ("PCM_16", "PCM_U8") else "int32"
    a, b = _played(caps[0], dtype), _played(caps[1], dtype)
    assert a[:4000].any(axis=1).sum() > 3900  # the audio, then only silence
    np.testing.assert_array_equal(a[:4000], b[:4000])
    assert not a[4000:].any() and not b[4000:].any()


USAGE = [
    (["-t", "raw"], "-b BITS"),
    (["-t", "raw", "-b", "16"], "-r RATE and -c CHANNELS"),
    (["-t", "raw", "-b", "16", "-r", "8000"], "-c CHANNELS"),
    (["-t", "raw", "-b", "12", "-r", "8000", "-c", "1"], "'12' is not one of"),
    (["-t", "raw", "-e", "float", "-b", "16", "-r", "8000", "-c", "1"], "-b 32, 64"),
    (["-t", "raw", "-e", "unsigned-integer", "-b", "16", "-r", "8000", "-c", "1"], "-b 8"),
    (["-e", "float"], "add -t raw"),
    (["--endian", "big"], "add -t raw"),
    (["-b", "24"], "16 or 32"),
    (["-f", "S99_LE"], "unknown -f format"),
    (["-f", "S16_LE", "-b", "16", "-r", "8000", "-c", "1"], "leave out -b"),
    (["-t", "wav", "-f", "S16_LE"], "-t wav"),
]


@pytest.mark.parametrize("args,words", USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_raw_flags_that_do_not_describe_the_input_are_usage_errors(args, words):
    r = subprocess.run([*I2S, "play", "-q", "-p", "/dev/i2s-no-such-port", *args, "-"], input="",
                       capture_output=True, text=True, timeout=60, env=ENV)
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert r.returncode == 2 and len(err) == 1 and words in err[0], r.stderr


def test_record_live_is_for_a_pipes_reader_never_a_file(tmp_path):
    """A recording into a file on disk is never resampled: --live with one is a usage error
    (before any board is asked)."""
    for args in ([str(tmp_path / "x.wav")], ["--max-file-time", "1s", str(tmp_path / "y.wav")]):
        r = subprocess.run([*I2S, "record", "-q", "--live", "-p", "/dev/i2s-no-such-port", *args], capture_output=True,
                           text=True, timeout=60, env=ENV)
        assert r.returncode == 2 and "a file is never resampled" in r.stderr, r.stderr


def test_a_source_that_pauses_longer_than_the_watchdog_goes_on(tmp_path):
    """A pipe that has nothing for longer than the board's watchdog (--timeout 1s) does not end
    the stream: the host keeps the board listening, the gap plays as silence and is counted as
    underruns, and everything the source wrote is on the pins, bit-exact (`--no-live`: no clock
    matching, which a reserve run low after the pause may start on a loaded host)."""
    cap = tmp_path / "tx.wav"
    proc = subprocess.Popen([*I2S, "play", "--json", "--no-live", "--timeout", "1s",
                             "-p", f"sim://fast?tx_capture={cap}", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    k = np.arange(2 * 16000, dtype=np.int64)
    x = np.stack([k % 30000 + 1, -(k % 20000) - 1], axis=1).astype(np.int16)
    proc.stdin.write(_wav_header(16000, 2, 0xFFFFFFFF) + x[:16000].astype("<i2").tobytes())
    proc.stdin.flush()
    first = proc.stderr.readline()
    assert first.startswith(b"playing stdin"), first  # the stream has started
    time.sleep(2.5)  # the source pauses: 1 s of its audio plays out, then 1.5 s with nothing (> the watchdog)
    proc.stdin.write(x[16000:].astype("<i2").tobytes())
    proc.stdin.close()
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 0, err
    s = json.loads(out)
    assert s["frames"] == 32000 and s["underruns"] >= 1
    got = _played(cap, "int16")
    nz = np.flatnonzero(got.any(axis=1))
    np.testing.assert_array_equal(got[nz], x)  # every frame, in order
    assert np.diff(nz).max() > 16000  # with a gap of silence of more than a second where it paused


def test_a_wav_into_a_pipe_comes_as_it_is_recorded():
    """The reader has the header and the first audio while the recording is still going on
    (not at its end), and the whole stream is a WAV that libsndfile reads to its end."""
    import io

    frames = 16000 * 4
    proc = subprocess.Popen([*I2S, "record", "-q", "-p", "sim://fast?rx_source=ramp", "-r", "16000", "-b", "16", "-c",
                             "2", "-s", str(frames), "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    head = proc.stdout.read(44 + 4 * 1600)
    assert proc.poll() is None  # 0.1 s of audio is here while the 4 s recording still runs
    rest = proc.stdout.read()
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 0, err
    data, rate = sf.read(io.BytesIO(head + rest), dtype="int16")
    assert rate == 16000
    np.testing.assert_array_equal(data, ramp_samples(0, frames, 16, 2))


@pytest.mark.slow
def test_max_file_time_cuts_the_recording_into_files_with_nothing_lost_between(tmp_path):
    """record --max-file-time 1s of 40000 frames at 16 kHz: arecord's names (rec-01.wav, ...),
    16000 + 16000 + 8000 frames, and the board's counting ramp continues across them exactly."""
    r = subprocess.run([*I2S, "record", "--json", "-p", "sim://fast?rx_source=ramp", "-r", "16000", "-b", "32", "-c",
                        "2", "-s", "40000", "--max-file-time", "1s", str(tmp_path / "rec.wav")],
                       capture_output=True, text=True, timeout=60, env=ENV)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    names = [str(tmp_path / f"rec-{i:02d}.wav") for i in (1, 2, 3)]
    assert s["files"] == names and s["frames"] == 40000 and s["frames_per_file"] == 16000
    parts = [sf.read(f, dtype="int32")[0] for f in names]
    assert [len(p) for p in parts] == [16000, 16000, 8000]
    np.testing.assert_array_equal(np.concatenate(parts), ramp_samples(0, 40000, 32, 2))
