"""The real `i2s` command line against the virtual board: play, record, devices, info, signals and bad input.

Every test runs `python -m i2scli ...` in a subprocess, as a user does, and checks exact
results: the TX capture sample for sample, recordings against the board's RX ramp, exit
codes (i2scli/errors.py) and one-line errors without tracebacks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import serial
import serial.rfc2217
import soundfile as sf
from conftest import ENV, I2S, LockedSender, TcpServer, i2s


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


# -- source files, written by hand so the expected values do not depend on libsndfile ----------
def write_wav(path: Path, rate: int, data: np.ndarray, kind: str) -> Path:
    """A plain WAV holding exactly `data` (frames, channels) as u8, s16, s24, s32 or f32."""
    data = np.asarray(data)
    channels = data.shape[1]
    if kind == "u8":
        raw, width, tag = data.astype(np.uint8).tobytes(), 1, 1
    elif kind == "s16":
        raw, width, tag = data.astype("<i2").tobytes(), 2, 1
    elif kind == "s24":
        raw = data.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
        width, tag = 3, 1
    elif kind == "s32":
        raw, width, tag = data.astype("<i4").tobytes(), 4, 1
    elif kind == "f32":
        raw, width, tag = data.astype("<f4").tobytes(), 4, 3
    else:
        raise ValueError(kind)
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * width, channels * width, 8 * width)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(raw)) + raw
    if len(raw) % 2:
        body += b"\0"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def source(kind: str, frames: int, channels: int, seed: int = 4) -> np.ndarray:
    """Random integers (or floats) covering the whole range, the extremes included, with a
    first frame that is loud on every channel (the capture is found after the silence)."""
    rng = np.random.default_rng(seed)
    shape = (frames, channels)
    if kind == "u8":
        x = rng.integers(0, 256, shape)
        x[x == 128] = 129
        x[0], x[1], x[2] = 255, 0, 1
    elif kind in ("s16", "s24", "s32"):
        bits = int(kind[1:])
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        x = rng.integers(lo, hi + 1, shape, dtype=np.int64)
        x[x == 0] = 1
        x[0], x[1], x[2] = hi, lo, -1
    else:  # f32: past full scale both ways (clipped), exact ±1, and ties for half-to-even
        x = rng.uniform(-1.25, 1.25, shape).astype(np.float32)
        specials = np.array([0.5, 1.0, -1.0, 1.2, -1.2, 3 / 2**32, 5 / 2**32, -3 / 2**32, -5 / 2**32,
                             (2**20 + 0.5) / 2**31, -(2**20 + 0.5) / 2**31, 2**-31, -(2**-31)], np.float32)
        x[: len(specials)] = specials[:, None]
    return x


def expected_wire(kind: str, x: np.ndarray, bits: int) -> np.ndarray:
    """The bus samples for file samples `x`, computed from the rules in audio/convert.py's docstring."""
    if kind == "f32":
        y = np.rint(x.astype(np.float64) * 2.0 ** (bits - 1))
        return np.clip(y, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).astype(np.int64)
    x = x.astype(np.int64)
    left_justified = {"u8": (x - 128) << 24, "s16": x << 16, "s24": x << 8, "s32": x}[kind]
    return left_justified if bits == 32 else left_justified >> 16  # the top 16 bits, arithmetic shift


def tx_audio(capture: Path, frames: int) -> np.ndarray:
    """`frames` frames of the TX capture from its first non-zero frame; what follows is silence."""
    info = sf.info(str(capture))
    data, _ = sf.read(str(capture), dtype="int16" if info.subtype == "PCM_16" else "int32", always_2d=True)
    loud = np.flatnonzero(np.any(data != 0, axis=1))
    assert len(loud), "the capture is all silence"
    audio = data[loud[0]:]
    assert not np.any(audio[frames:]), "audio after the end of the file"
    return audio[:frames].astype(np.int64)


# -- the RX ramp, from its definition (i2scli/sim/wire.py) ---------------------------------------
def ramp(frames: int, bits: int, channels: int, subtype: str = "PCM_32") -> np.ndarray:
    """The ramp as a file of `subtype` holds it, read back as int32 (left-justified)."""
    n = 2 * np.arange(frames, dtype=np.int64)[:, None] + np.arange(channels)[None, :]
    if bits == 16:
        v = n % 2**16
        slot = np.where(v >= 2**15, v - 2**16, v) << 16
    else:
        v = (n % 2**24) << 8
        slot = np.where(v >= 2**31, v - 2**32, v)
    keep = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32}[subtype]
    return (slot >> (32 - keep)) << (32 - keep)


def read_int32(path) -> np.ndarray:
    return sf.read(str(path), dtype="int32", always_2d=True)[0].astype(np.int64)


# =============================================================================================
# 1. play: the TX capture is the exact conversion of the file


PLAY_CASES = [
    # kind, subtype libsndfile reports, channels, -b (None: default), bus bits
    ("s16", "PCM_16", 1, None, 16),
    ("s16", "PCM_16", 2, None, 16),
    ("s24", "PCM_24", 1, None, 32),
    ("s24", "PCM_24", 2, None, 32),
    ("s32", "PCM_32", 1, None, 32),
    ("s32", "PCM_32", 2, None, 32),
    ("f32", "FLOAT", 1, None, 32),
    ("f32", "FLOAT", 2, None, 32),
    ("u8", "PCM_U8", 1, None, 16),
    ("u8", "PCM_U8", 2, None, 16),
    ("s24", "PCM_24", 2, "16", 16),  # deeper file on a 16-bit bus: truncated to the top 16 bits
    ("f32", "FLOAT", 2, "16", 16),  # float on a 16-bit bus: × 2**15
    ("s16", "PCM_16", 2, "32", 32),  # 16-bit file on a 32-bit bus: left-justified
]


@pytest.mark.slow
@pytest.mark.parametrize("kind,subtype,channels,bits_opt,bits", PLAY_CASES,
                         ids=[f"{c[1]}-{c[2]}ch-b{c[3] or 'default'}" for c in PLAY_CASES])
def test_play_is_bit_exact(tmp_path, kind, subtype, channels, bits_opt, bits):
    profile, rate = ("rp2", 8000) if channels == 2 else ("fast", 16000)
    frames = int(0.3 * rate)
    x = source(kind, frames, channels)
    wav = write_wav(tmp_path / "in.wav", rate, x, kind)
    assert (sf.info(str(wav)).subtype, sf.info(str(wav)).channels) == (subtype, channels)
    cap = tmp_path / "tx.wav"
    args = ["play", wav, "-p", f"sim://{profile}?tx_capture={cap}"] + (["-b", bits_opt] if bits_opt else [])
    r = i2s(*args, check=0)
    assert f"{rate} Hz {bits}-bit {'stereo' if channels == 2 else 'mono'}" in r.stderr
    assert sf.info(str(cap)).subtype == ("PCM_16" if bits == 16 else "PCM_32")
    want = expected_wire(kind, x, bits)
    if channels == 1:
        want = np.repeat(want, 2, axis=1)  # MONO TX sends each sample on both slots
    got = tx_audio(cap, frames)
    assert np.array_equal(got, want), np.flatnonzero(np.any(got != want, axis=1))[:10]


@pytest.mark.slow
def test_mono_file_on_a_stereo_bus_and_stereo_file_on_a_mono_bus(tmp_path):
    rate, frames = 16000, 4000
    mono = source("s16", frames, 1, seed=1)
    stereo = source("s16", frames, 2, seed=2)
    write_wav(tmp_path / "mono.wav", rate, mono, "s16")
    write_wav(tmp_path / "stereo.wav", rate, stereo, "s16")
    i2s("play", tmp_path / "mono.wav", "-c", "2", "-p", f"sim://fast?tx_capture={tmp_path / 'a.wav'}", check=0)
    assert np.array_equal(tx_audio(tmp_path / "a.wav", frames), np.repeat(mono, 2, axis=1))
    i2s("play", tmp_path / "stereo.wav", "-c", "1", "-p", f"sim://fast?tx_capture={tmp_path / 'b.wav'}", check=0)
    assert np.array_equal(tx_audio(tmp_path / "b.wav", frames), np.repeat(stereo[:, :1], 2, axis=1))


@pytest.mark.slow
@pytest.mark.parametrize("kind,subtype", [("s16", "PCM_16"), ("s24", "PCM_24")])
def test_flac_plays_exactly_as_its_wav(tmp_path, kind, subtype):
    rate, frames = 16000, 4800
    x = source(kind, frames, 2, seed=7)
    wav = write_wav(tmp_path / "in.wav", rate, x, kind)
    flac = tmp_path / "in.flac"
    sf.write(str(flac), x.astype(np.int32) << (16 if kind == "s16" else 8), rate, subtype=subtype, format="FLAC")
    assert sf.info(str(flac)).subtype == subtype
    captures = []
    for f in (wav, flac):
        cap = tmp_path / f"tx-{f.suffix[1:]}.wav"
        i2s("play", f, "-p", f"sim://fast?tx_capture={cap}", check=0)
        captures.append(tx_audio(cap, frames))
    bits = 16 if kind == "s16" else 32
    assert np.array_equal(captures[0], expected_wire(kind, x, bits))
    assert np.array_equal(captures[1], captures[0])


# =============================================================================================
# 2. record: exactly the board's samples, exactly as many as asked


@pytest.mark.slow
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32"])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("bits", [16, 32])
def test_record_ramp_is_exact(tmp_path, bits, channels, subtype):
    out = tmp_path / "rec.wav"
    n = 3001
    i2s("record", "-p", "sim://rp2?rx_source=ramp", "-r", 16000, "-b", bits, "-c", channels, "--subtype", subtype,
        "-s", n, out, check=0)
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, channels, subtype, n)
    got = read_int32(out)
    want = ramp(n, bits, channels, subtype)
    assert np.array_equal(got, want), np.flatnonzero(np.any(got != want, axis=1))[:10]


@pytest.mark.slow
def test_record_duration_gives_exact_frame_count(tmp_path):
    out = tmp_path / "two.wav"
    i2s("record", "-p", "sim://fast?rx_source=ramp", "-d", "2s", "-r", 22050, "-b", 16, "-c", 1, out, check=0)
    assert sf.info(str(out)).frames == 44100
    assert np.array_equal(read_int32(out), ramp(44100, 16, 1, "PCM_16"))


@pytest.mark.slow
def test_record_samples_and_flac_default(tmp_path):
    out = tmp_path / "n.flac"
    i2s("record", "-p", "sim://fast?rx_source=ramp", "-s", 777, "-b", 32, "-c", 2, out, check=0)
    info = sf.info(str(out))
    assert (info.format, info.subtype, info.frames) == ("FLAC", "PCM_24", 777)
    assert np.array_equal(read_int32(out), ramp(777, 32, 2, "PCM_24"))  # 24-bit ramp: nothing lost


@pytest.mark.slow
@pytest.mark.parametrize("kind,channels,bits,subtype", [("s16", 2, 16, "PCM_16"), ("s24", 1, 32, "PCM_24")])
def test_record_file_source_comes_back_exactly(tmp_path, kind, channels, bits, subtype):
    rate, frames = 16000, 5000
    x = source(kind, frames, channels, seed=11)
    src = write_wav(tmp_path / "mic.wav", rate, x, kind)
    out = tmp_path / "back.wav"
    i2s("record", "-p", f"sim://fast?rx_source={src}", "-r", rate, "-b", bits, "-c", channels, "--subtype", subtype,
        "-s", frames, out, check=0)
    assert sf.info(str(out)).subtype == subtype
    assert np.array_equal(read_int32(out), x.astype(np.int64) << (16 if kind == "s16" else 8))


# =============================================================================================
# 3. stopping a recording: signals, a lost board, a background job


def _start_record(out: Path, port="sim://rp2?rx_source=ramp", **popen) -> subprocess.Popen:
    return subprocess.Popen([*I2S, "record", "-p", port, "-r", "16000", "-b", "16", "-c", "2", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, **popen)


def _wait_for_growth(out: Path, proc: subprocess.Popen | None, beyond: int = 0, timeout: float = 20) -> int:
    """Poll until the recording holds more than `beyond` + 0.25 s of audio; its size."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        size = out.stat().st_size if out.exists() else 0
        if size > beyond + 44 + 16000:
            return size
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"i2s record ended early: {proc.returncode} {proc.communicate()}")
        time.sleep(0.02)
    pytest.fail(f"{out} did not grow past {beyond} bytes")


def _check_ramp_prefix(out: Path, channels: int = 2) -> int:
    info = sf.info(str(out))  # soundfile opens it: a valid file
    assert info.frames > 0 and info.channels == channels
    got = read_int32(out)
    assert len(got) == info.frames
    assert np.array_equal(got, ramp(len(got), 16, channels, "PCM_16"))
    assert out.stat().st_size == 44 + info.frames * 2 * channels  # the header covers all the data
    return info.frames


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_signal_keeps_a_valid_recording(tmp_path, sig):
    out = tmp_path / "sig.wav"
    proc = _start_record(out)
    _wait_for_growth(out, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err
    frames = _check_ramp_prefix(out)
    assert f"({frames} frames)" in err, err  # the summary tells what was kept


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_reaches_the_board_process_too(tmp_path):
    """A terminal's Ctrl-C goes to the whole process group: sim:// board included."""
    out = tmp_path / "pg.wav"
    proc = _start_record(out, start_new_session=True)
    _wait_for_growth(out, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err
    _check_ramp_prefix(out)


@pytest.mark.slow
def test_lost_board_keeps_what_arrived(tmp_path):
    out = tmp_path / "lost.wav"
    r = i2s("record", "-p", "sim://rp2?rx_source=ramp&fault=unplug:at=1.5s", "-r", 16000, "-b", 16, "-c", 2,
            "-d", "10s", out, timeout=30, check=5)
    frames = _check_ramp_prefix(out)
    assert 0 < frames < 10 * 16000
    assert f"kept {frames} frames" in r.stderr, r.stderr


@pytest.mark.slow
def test_background_job_ignores_sigint_and_stops_on_sigterm(tmp_path):
    """`cmd &` in a non-interactive shell starts with SIGINT ignored; i2s keeps it that way."""
    out = tmp_path / "bg.wav"
    cmd = [*I2S, "record", "-p", "sim://rp2?rx_source=ramp", "-r", "16000", "-b", "16", "-c", "2", str(out)]
    shell = subprocess.Popen(["bash", "-c", '"$@" & echo $!; wait $!', "bash", *cmd],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        pid = int(shell.stdout.readline())
        size = _wait_for_growth(out, shell)
        os.kill(pid, signal.SIGINT)
        _wait_for_growth(out, shell, beyond=size)  # still recording well after the SIGINT
        assert shell.poll() is None
        os.kill(pid, signal.SIGTERM)
        _, err = shell.communicate(timeout=20)
    finally:
        if shell.poll() is None:
            shell.kill()
    assert "Traceback" not in err, err
    assert shell.returncode == 130, err
    _check_ramp_prefix(out)


# =============================================================================================
# 4. --json


@pytest.mark.slow
def test_play_json_counts(tmp_path):
    rate, frames = 8000, 4000
    wav = write_wav(tmp_path / "in.wav", rate, source("s16", frames, 2), "s16")
    cap = tmp_path / "tx.wav"
    r = i2s("play", wav, "--json", "-p", f"sim://fast?tx_capture={cap}", check=0)
    s = json.loads(r.stdout)  # the whole of stdout is one JSON document
    assert r.stdout.strip().startswith("{") and r.stdout.count("\n") == 1
    assert s["action"] == "played" and s["frames"] == frames and s["seconds"] == pytest.approx(0.5)
    assert (s["rate"], s["bits"], s["channels"]) == (rate, 16, 2)
    assert (s["underruns"], s["overruns"], s["crc_errors"], s["seq_gaps"], s["clipped"]) == (0, 0, 0, 0, 0)
    assert s["interrupted"] is False
    st = s["settings"]
    assert (st["rate"], st["bits"], st["format"], st["port"]) == (rate, 16, "stereo", f"sim://fast?tx_capture={cap}")
    assert {"id", "sck", "ws", "sd", "ibuf", "io", "board", "agent"} <= set(st)
    assert np.array_equal(tx_audio(cap, frames), source("s16", frames, 2))


@pytest.mark.slow
def test_record_json_counts(tmp_path):
    out = tmp_path / "rec.wav"
    r = i2s("record", "--json", "-p", "sim://fast?rx_source=ramp", "-r", 8000, "-b", 16, "-c", 2, "-s", 3000, out,
            check=0)
    s = json.loads(r.stdout)
    assert r.stdout.count("\n") == 1
    assert s["action"] == "recorded" and s["frames"] == 3000 == sf.info(str(out)).frames
    assert s["file"] == str(out) and s["subtype"] == "PCM_16" and s["format"] == "WAV"
    assert (s["underruns"], s["overruns"], s["crc_errors"], s["seq_gaps"]) == (0, 0, 0, 0)
    assert s["interrupted"] is False
    assert (s["settings"]["rate"], s["settings"]["bits"], s["settings"]["format"]) == (8000, 16, "stereo")


# =============================================================================================
# 5. devices and info


def test_devices_json():
    r = i2s("devices", "--json", check=0)
    found = json.loads(r.stdout)
    assert isinstance(found, list)
    for d in found:
        assert {"path", "vid_pid", "serial_number", "description", "micropython"} <= set(d)


@pytest.mark.slow
def test_info_json_on_rp2():
    r = i2s("info", "--json", "-p", "sim://rp2", check=0)
    s = json.loads(r.stdout)
    assert s["platform"] == "rp2" and s["i2s"] is True and s["preset"] == "pico"
    assert s["link"]["up_bytes_per_s"] > 0 and s["link"]["down_bytes_per_s"] > 0
    assert isinstance(s["fits"], list) and s["fits"]
    assert {"8000 Hz 16-bit mono", "48000 Hz 32-bit stereo"} <= {f["stream"] for f in s["fits"]}
    assert all(isinstance(f["play"], bool) and isinstance(f["record"], bool) for f in s["fits"])


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [["info"], ["play", "--tone", "440", "-d", "0.2s"]], ids=["info", "play"])
def test_board_without_i2s(cmd):
    r = i2s(*cmd, "-p", "sim://no-i2s", check=4)
    lines = error_lines(r.stderr)
    assert len(lines) == 1, r.stderr
    assert "OpenMV AE3" in lines[0] and "machine.I2S" in lines[0]


# =============================================================================================
# 6. remote boards: rfc2217:// and socket://


class PtySerial(serial.Serial):
    """The virtual board's pseudo-terminal has no modem lines (their ioctls fail): report
    them idle and ignore DTR, RTS and break, as a USB CDC board does."""

    def _update_dtr_state(self):
        pass

    def _update_rts_state(self):
        pass

    def _update_break_state(self):
        pass

    cts = dsr = ri = cd = property(lambda self: False)


class Bridge(TcpServer):
    """A TCP server on loopback in front of a serial device: RFC 2217 (pyserial's PortManager,
    as in its examples/rfc2217_server.py) or raw bytes (for socket://). One client at a time."""

    def __init__(self, device: str, rfc2217: bool):
        self.device = device
        self.rfc2217 = rfc2217
        super().__init__()

    def _session(self, conn: socket.socket):
        conn.settimeout(None)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ser = PtySerial(self.device, timeout=0.05)
        out = LockedSender(conn)
        manager = serial.rfc2217.PortManager(ser, out) if self.rfc2217 else None
        done = threading.Event()

        def to_network():
            while not done.is_set():
                try:
                    data = ser.read(ser.in_waiting or 1)
                except (OSError, serial.SerialException):
                    break
                if data:
                    try:
                        out.write(b"".join(manager.escape(data)) if manager else data)
                    except OSError:
                        break

        reader = threading.Thread(target=to_network, daemon=True)
        reader.start()
        try:
            while self.alive:
                data = conn.recv(4096)
                if not data:
                    break
                ser.write(b"".join(manager.filter(data)) if manager else data)
        except OSError:
            pass
        finally:
            done.set()
            reader.join(2)
            ser.close()


@pytest.fixture
def bridge():
    made = []

    def make(device, rfc2217=True):
        b = Bridge(device, rfc2217)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def _tone(freq_num: int, rate: int, frames: int, dbfs: float = -6.0, bits: int = 16) -> np.ndarray:
    """rint(A·sin(2π·k·f/rate)·(2**(bits-1)-1)) with the phase reduced exactly (f/rate = num/period)."""
    from fractions import Fraction

    step = Fraction(freq_num, rate)
    k = np.arange(frames, dtype=np.int64)
    phase = (k * step.numerator) % step.denominator
    return np.rint(10 ** (dbfs / 20) * (2 ** (bits - 1) - 1) * np.sin(2 * np.pi * phase / step.denominator))


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["rfc2217", "socket"])
def test_remote_board(sim, bridge, tmp_path, scheme):
    board = sim("fast", "--rx-source", "ramp", events=False)  # fast: the same pins as a Pico
    b = bridge(board.path, rfc2217=scheme == "rfc2217")
    url = f"{scheme}://127.0.0.1:{b.port}"
    # --no-probe: the remote path is under test, not what a loaded machine's probe would refuse
    r = i2s("play", "-p", url, "--tone", 440, "-d", "0.3s", "--board", "pico", "--no-probe", timeout=60, check=0)
    assert "48000 Hz 16-bit stereo" in r.stderr and "I2S(0) sck=16 ws=17 sd=18" in r.stderr
    out = tmp_path / "remote.wav"
    i2s("record", "-p", url, "-s", 2000, "--board", "pico", "--no-probe", out, timeout=60, check=0)
    assert np.array_equal(read_int32(out), ramp(2000, 32, 1, "PCM_32"))
    board.stop()
    data, _ = sf.read(board.files["tx"], dtype="int16", always_2d=True)
    first = np.flatnonzero(np.any(data != 0, axis=1))[0] - 1  # the tone starts at sin(0) = 0
    want = _tone(440, 48000, 14400)
    got = data[first:]
    assert not np.any(got[len(want):])
    assert np.array_equal(got[: len(want)], np.repeat(want[:, None], 2, axis=1))


# =============================================================================================
# 7. bad input: one clear line, the documented exit code


def _one_error(r, *words):
    lines = error_lines(r.stderr)
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("i2s: error:"), lines
    for w in words:
        assert w in lines[0], lines


@pytest.mark.slow
def test_missing_file(tmp_path):
    _one_error(i2s("play", tmp_path / "nope.wav", "-p", "sim://fast", check=1), "nope.wav", "no such file")


@pytest.mark.slow
def test_directory_as_input(tmp_path):
    _one_error(i2s("play", tmp_path, "-p", "sim://fast", check=1), str(tmp_path), "directory")


@pytest.mark.slow
def test_not_audio(tmp_path):
    f = tmp_path / "notes.wav"
    f.write_text("these are not the samples you are looking for\n")
    _one_error(i2s("play", f, "-p", "sim://fast", check=1), "notes.wav", "not a readable audio file")


def test_bad_duration():
    r = i2s("play", "--tone", 440, "-d", "1xs", "-p", "sim://fast", check=2)
    assert "Error: Invalid value for '-d' / '--duration'" in r.stderr and "1xs" in r.stderr


def test_bad_bits():
    r = i2s("record", "-b", 24, "-p", "sim://fast", "x.wav", check=2)
    assert "Error: Invalid value for '-b' / '--bits'" in r.stderr and "24" in r.stderr


def test_output_in_missing_directory(tmp_path):
    out = tmp_path / "missing" / "out.wav"
    _one_error(i2s("record", "-s", 100, "-p", "sim://fast", out, check=1), "missing", "does not exist")
    assert not out.parent.exists()


@pytest.mark.slow
def test_output_is_a_directory(tmp_path):
    d = tmp_path / "d.wav"
    d.mkdir()
    _one_error(i2s("record", "-s", 100, "-p", "sim://fast", d, check=1), "directory")


@pytest.mark.parametrize("cmd", ["record", "duplex"])
def test_output_directory_without_an_extension_is_said_to_be_a_directory(tmp_path, cmd):
    """Not "cannot record to 'a file without extension'": it is a directory, and that is said
    before the board is touched (the port does not exist: touching it would be exit 3)."""
    d = tmp_path / "adir"
    d.mkdir()
    args = ["record", "-d", "1s", d] if cmd == "record" else ["duplex", "-d", "1s", "-o", d]
    r = i2s(*args, "-p", tmp_path / "ttyNOPE", check=1)
    assert error_lines(r.stderr) == [f"i2s: error: {d}: is a directory"], r.stderr  # the one line


@pytest.mark.slow
def test_duplex_files_are_checked_before_the_board(tmp_path):
    """Every recording of --cycles and the --timeline trace(s), before the board is touched."""
    nope = tmp_path / "ttyNOPE"
    base = ["duplex", "-d", "1s", "-p", nope]
    _one_error(i2s(*base, "-o", tmp_path / "missing" / "r.wav", check=1), f"{tmp_path / 'missing' / 'r.wav'}: ",
               "does not exist")
    (tmp_path / "take-2.wav").mkdir()  # the second cycle's file
    _one_error(i2s(*base, "--cycles", 2, "-o", tmp_path / "take-{n}.wav", check=1),
               f"{tmp_path / 'take-2.wav'}: is a directory")
    _one_error(i2s(*base, "-o", tmp_path / "r.wav", "--timeline", tmp_path / "missing" / "t.vcd", check=1),
               f"{tmp_path / 'missing' / 't.vcd'}: ", "does not exist")
    assert [p.name for p in tmp_path.glob("*.wav")] == ["take-2.wav"]  # nothing was recorded


@pytest.mark.slow
def test_port_that_does_not_exist(tmp_path):
    _one_error(i2s("play", "--tone", 440, "-d", "0.2s", "-p", tmp_path / "ttyNOPE", check=3), "ttyNOPE")


@pytest.mark.slow
def test_teensy_preset_uses_the_firmwares_pin_names(tmp_path):
    """mimxrt firmware takes pin names only (no Pin(n) since v1.22): the teensy41 preset says
    D4/D3/D2 and D21/D20/D8, and a number given by hand gets the board's own error."""
    r = i2s("play", "-p", "sim://mimxrt", "--tone", 440, "-d", "0.1s", "-r", 44100, "-c", 1, check=0)
    assert "I2S(2) sck=D4 ws=D3 sd=D2" in r.stderr, r.stderr
    out = tmp_path / "teensy.wav"
    r = i2s("record", "-p", "sim://mimxrt?rx_source=ramp", "-s", 2000, "-r", 44100, out, check=0)
    assert "I2S(1) sck=D21 ws=D20 sd=D8" in r.stderr, r.stderr
    assert np.array_equal(read_int32(out), ramp(2000, 32, 1, "PCM_32"))
    r = i2s("play", "-p", "sim://mimxrt", "--tone", 440, "-d", "0.1s", "-r", 44100, "-c", 1, "--sck", 4,
            check=4)
    assert error_lines(r.stderr)[-1] == "i2s: error: ValueError: Pin doesn't exist", r.stderr


@pytest.mark.slow
def test_a_latency_the_board_cannot_hold_is_one_line_exit_4_and_one_it_can_is_the_ring():
    r = i2s("play", "--latency", "9s", "--tone", "440", "-d", "0.1s", "-p", "sim://rp2", check=4)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("i2s: error: a latency of 9000 ms needs an I2S ring of ")
    assert "the most is " in r.stderr
    r = i2s("play", "--latency", "120ms", "--tone", "440", "-d", "0.1s", "-p", "sim://rp2", "--json", check=0)
    s = json.loads(r.stdout)["settings"]
    assert s["ring_from"] == "latency" and 0.12 <= s["buffer_time"] < 0.122
