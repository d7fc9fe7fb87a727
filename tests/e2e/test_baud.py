"""Faster UART links (docs/protocol.md, BAUD): the switch after HELLO, its fallback, and the
board back at its REPL's rate on every way out — on the virtual ESP32 behind a modelled bridge."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import serial
import soundfile as sf
from conftest import ENV, I2S, i2s, kill_host_mid_frame, mpremote, raw_prompt

from i2scli.link import agent_code, baud, early


def info_json(*args) -> dict:
    r = i2s("info", "--json", *args, check=0, timeout=90)
    return json.loads(r.stdout)


def events(board) -> list[dict]:
    return [e for e in board.events() if e.get("ev") == "uart"]


@pytest.mark.slow
def test_auto_takes_the_bridge_maximum_and_the_link_gets_faster():
    slow = info_json("-p", "sim://esp32", "--baud", "off")
    fast = info_json("-p", "sim://esp32")  # auto: the CP2102 of an ESP32 DevKitC
    assert slow["link"]["baud"] == 115200
    assert fast["link"]["baud"] == 921600
    # measured side by side: the probe runs after the switch, so the fit uses the real rate
    assert fast["link"]["up_bytes_per_s"] >= 5 * slow["link"]["up_bytes_per_s"]
    fits = {f["stream"]: f for f in fast["fits"]}
    assert fits["16000 Hz 16-bit mono"]["play"] and fits["16000 Hz 16-bit mono"]["record"]
    assert not any(f["play"] for f in slow["fits"])


@pytest.mark.slow
@pytest.mark.parametrize("bridge, rate", [("ch340", 2000000), ("cp2102n", 3000000), ("ft232r", 3000000)])
def test_faster_bridges_get_their_own_maximum(bridge, rate):
    # CP2102N shares the CP2102's VID:PID: its product string tells them apart
    assert info_json("-p", f"sim://esp32?bridge={bridge}", "--no-probe")["link"]["baud"] == rate


def _speech_like(path, rate=16000, seconds=1.5):
    rng = np.random.default_rng(3)
    t = np.arange(int(rate * seconds)) / rate
    x = 8000 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + rng.normal(0, 1500, t.size)
    x = np.clip(x, -32768, 32767).astype(np.int16)
    sf.write(path, x, rate, subtype="PCM_16")
    return x


@pytest.mark.slow
def test_play_and_record_at_high_rate_then_mpremote_at_115200(sim, tmp_path):
    board = sim("esp32", "--rx-source", "ramp")
    src = _speech_like(tmp_path / "speech.wav")
    i2s("play", "-q", "--baud", "921600", "-p", board.path, tmp_path / "speech.wav", check=0, timeout=90)
    i2s("record", "-q", "--baud", "921600", "-r", "16000", "-b", "16", "-c", "1", "-s", "8000",
        "-p", board.path, tmp_path / "rec.wav", check=0, timeout=90)
    # the REPL is back at 115200: mpremote, which never leaves it, just works
    assert mpremote("connect", board.path, "exec", "print('back')").stdout == b"back\r\n"
    board.stop()
    got, rate = sf.read(board.files["tx"], dtype="int16")
    assert rate == 16000
    got = got if got.ndim == 1 else got[:, 0]  # MONO TX drives both slots with the sample
    k = int(np.flatnonzero(got)[0])
    assert np.array_equal(got[k:k + src.size], src[np.flatnonzero(src)[0]:][: got.size - k])
    assert np.count_nonzero(got[k + src.size:]) == 0
    rec, _ = sf.read(tmp_path / "rec.wav", dtype="int16")
    assert rec.size == 8000
    steps = np.diff(rec.astype(np.int64)) % 2**16
    assert np.all(steps == steps[0])  # an exact run of the counting source, nothing lost or repeated
    ev = events(board)
    assert [e["baudrate"] for e in ev].count(921600) >= 2  # each agent run switched…
    assert ev[-1]["baudrate"] == 115200  # …and put the REPL's rate back


@pytest.mark.slow
def test_killed_host_at_high_rate_leaves_the_board_at_115200(sim):
    board = sim("esp32", capture=False)
    host = subprocess.Popen([sys.executable, "-c", f"""
import itertools
from i2scli.link import connect
with connect({board.path!r}, baud=921600, expect={{'mode': 'tx'}}) as a:
    cfg = dict(id=0, sck=32, ws=25, sd=33, bits=16, format='mono', rate=8000, ibuf=4096, payload=96,
               timeout_ms=1000)
    print('streaming', a.baud, flush=True)
    a.play(cfg, itertools.repeat(bytes(960)))
"""], stdout=subprocess.PIPE, text=True, env=ENV)
    assert host.stdout.readline().split() == ["streaming", "921600"]
    time.sleep(0.5)
    os.kill(host.pid, signal.SIGKILL)
    host.wait()
    killed = time.monotonic()
    # Listen at 115200 without writing: the agent's watchdog (1 s) ends the stream, the agent
    # puts the REPL UART back to 115200, and the raw REPL closes the exec and shows its prompt
    seen, back = raw_prompt(board.path, killed, 15)
    assert seen.endswith(b"\x04>")
    assert back < 1.0 + 2.0, back  # within the watchdog plus 2 s
    # and mpremote, which never leaves 115200, just works
    assert mpremote("connect", board.path, "exec", "print('back')").stdout == b"back\r\n"
    board.stop()
    assert events(board)[-1]["baudrate"] == 115200


def test_killed_host_mid_frame_leaves_the_board_at_115200(sim):
    # The host dies with half a DATA frame on the wire: the agent waits in a blocking read for
    # the rest, with Ctrl-C off and its UART at 921600. Its Watch (firmware/i2s_link.py) ends
    # that read: within the watchdog plus 2 s the board is back at its REPL at 115200.
    board = sim("esp32", capture=False)
    killed = kill_host_mid_frame(board.path, 32, 25, 33, baud=921600)
    seen, back = raw_prompt(board.path, killed)
    assert seen.endswith(b"\x04>"), seen[-200:]
    assert back < 1.0 + 2.0, back  # within the watchdog plus 2 s
    assert mpremote("connect", board.path, "exec", "print('back')").stdout == b"back\r\n"
    board.stop()
    ev = board.events()
    assert [e["byte"] for e in ev if e["ev"] == "dupterm_in"] == [3]  # the Watch's own Ctrl-C ended the read
    assert events(board)[-1]["baudrate"] == 115200


def test_killed_i2s_play_leaves_the_board_at_115200_for_mpremote(sim, tmp_path):
    # The command a user runs, with its defaults (--timeout 3s, the early switch, the loader):
    # a 20 s file at 921600 baud, SIGKILLed 2 s and then 3.5 s into the music. Each time the
    # board is back at its raw REPL at 115200 within the watchdog (3 s) plus 2 s, where
    # mpremote (which never leaves 115200) just works. Most kills leave half a frame on the
    # wire (an ESP32's frames go in credit-sized pieces), which only the agent's Watch ends.
    board = sim("esp32", capture=False)
    rate = 22050
    t = np.arange(rate * 20) / rate
    sf.write(tmp_path / "long.wav", (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16), rate, subtype="PCM_16")
    for delay in (2.0, 3.5):
        host = subprocess.Popen([*I2S, "play", "--baud", "921600", "-p", board.path, str(tmp_path / "long.wav")],
                                stderr=subprocess.PIPE, text=True, env=ENV)
        assert host.stderr.readline().startswith("playing "), "no stream started"
        time.sleep(delay)
        os.kill(host.pid, signal.SIGKILL)
        host.wait()
        host.stderr.close()
        seen, back = raw_prompt(board.path, time.monotonic())
        assert seen.endswith(b"\x04>"), seen[-200:]
        assert back < 3.0 + 2.0, back
        assert mpremote("connect", board.path, "exec", "print('back')").stdout == b"back\r\n"
    board.stop()
    assert [e["baudrate"] for e in events(board)][-1] == 115200


@pytest.mark.slow
def test_rate_the_bridge_cannot_reach_falls_back_with_one_warning():
    r = i2s("info", "--json", "-p", "sim://esp32", "--baud", "2000000", check=0, timeout=90)  # a CP2102 tops out below
    warnings = [ln for ln in r.stderr.splitlines() if "baud" in ln]
    assert len(warnings) == 1 and "staying at 115200 baud" in warnings[0], r.stderr
    info = json.loads(r.stdout)
    assert info["link"]["baud"] == 115200
    assert not any(f["play"] for f in info["fits"])  # as at 115200: nothing fits
    # a stream that does not fit is refused as today
    r = i2s("play", "-q", "--tone", "440", "-r", "16000", "-c", "1", "-d", "0.5s", "-p", "sim://esp32",
            "--baud", "2000000", check=4, timeout=90)
    assert "kB/s" in r.stderr


def uart_events(path) -> list[dict]:
    return [e for e in map(json.loads, open(path).read().splitlines()) if e.get("ev") == "uart"]


@pytest.mark.slow
def test_baud_off_never_switches(tmp_path):
    ev = tmp_path / "ev.jsonl"
    info = info_json("-p", f"sim://esp32?events={ev}", "--baud", "off")
    assert info["link"]["baud"] == 115200
    assert uart_events(ev) == []


@pytest.mark.slow
def test_unknown_device_is_not_switched_by_auto(sim):
    board = sim("esp32", capture=False)  # a bare pty: no USB ids, no bridge to go by
    assert info_json("-p", board.path, "--no-probe")["link"]["baud"] is None
    board.stop()
    assert events(board) == []


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["esp32s3", "rp2"])
def test_native_usb_boards_are_not_switched(tmp_path, profile):
    ev = tmp_path / "ev.jsonl"
    assert info_json("-p", f"sim://{profile}?events={ev}", "--no-probe")["link"]["baud"] is None
    r = i2s("info", "-p", f"sim://{profile}", "--no-probe", "--baud", "921600", check=0)
    assert "--baud ignored" in r.stderr
    assert uart_events(ev) == []


@pytest.mark.slow
def test_board_that_cannot_retime_its_repl_warns_and_goes_on(sim):
    board = sim("fast", capture=False)  # a unix board: its REPL is no UART
    r = i2s("info", "--json", "--no-probe", "-p", board.path, "--baud", "921600", check=0)
    assert "cannot change its REPL rate" in r.stderr
    assert json.loads(r.stdout)["link"]["baud"] == 115200


@pytest.mark.parametrize("bad", ["fast", "0", "-9600", "1.5e6"])
def test_bad_baud_is_a_usage_error(bad):
    r = i2s("info", "-p", "sim://esp32", "--baud", bad, check=2)
    assert "--baud" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_i2s_baud_environment_variable():
    r = subprocess.run([*I2S, "info", "--json", "--no-probe", "-p", "sim://esp32"], capture_output=True, text=True,
                       env={**ENV, "I2S_BAUD": "off"}, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["link"]["baud"] == 115200


def test_bridge_table():
    assert baud.bridge_for(0x10C4, 0xEA60).max_baud == 921600
    assert baud.bridge_for(0x10C4, 0xEA60, "CP2102N USB to UART Bridge Controller").max_baud == 3000000
    assert baud.bridge_for(0x1A86, 0x7523).max_baud == 2000000
    assert baud.bridge_for(0x0403, 0x6001).max_baud == 3000000
    assert baud.bridge_for(0x2E8A, 0x0005) is None
    assert baud.parse_setting("AUTO") == "auto" and baud.parse_setting("921600") == 921600
    with pytest.raises(ValueError):
        baud.parse_setting("-1")


def test_pyserial_sees_the_board_as_the_bridge_it_models():
    import i2scli.sim  # noqa: F401  (registers sim:// with pyserial)

    s = serial.serial_for_url("sim://esp32?bridge=ft232r", timeout=0.1)
    try:
        assert s.usb_vid_pid == (0x0403, 0x6001)
    finally:
        s.close()


@pytest.mark.slow
def test_ch340_at_2_mbaud_plays_bit_exact_every_time(sim, tmp_path):
    # The line (200 kB/s) outruns the ESP32's stdin path (180 kB/s), so the 260-byte input ring
    # runs as full as the agent's credits allow (256 bytes): any byte the sim counts twice there
    # overflows it, and the stream stalls (lost credit) or resyncs. Credits must keep it whole.
    board = sim("esp32", "--bridge", "ch340")
    rng = np.random.default_rng(7)
    src = (rng.integers(1, 20000, size=(22050, 2)) * rng.choice([-1, 1], size=(22050, 2))).astype(np.int16)
    sf.write(tmp_path / "noise.wav", src, 22050, subtype="PCM_16")
    for _ in range(5):  # --no-probe: the credits are under test, not a probe on a loaded machine
        i2s("play", "-q", "--json", "--baud", "2000000", "--compress", "off", "--no-probe", "-p", board.path,
            tmp_path / "noise.wav", check=0, timeout=90)
    board.stop()
    assert not [e for e in board.events() if e.get("ev") == "input_overflow"]
    got, rate = sf.read(board.files["tx"], dtype="int16")
    assert rate == 22050
    played = got[np.any(got != 0, axis=1)]  # silence around (and any underrun within) each play
    assert np.array_equal(played, np.concatenate([src] * 5))


# -- the early switch: the upload itself at the raised rate (docs/protocol.md, "Early switch") --
@pytest.mark.slow
def test_cold_start_raises_the_link_before_the_upload_and_keeps_it(sim, tmp_path):
    board = sim("esp32")
    src = _speech_like(tmp_path / "speech.wav", seconds=0.05)
    r = i2s("play", "--baud", "921600", "-p", board.path, tmp_path / "speech.wav", check=0, timeout=90)
    assert "baud" not in r.stderr, r.stderr  # no fallback, no warning
    assert mpremote("connect", board.path, "exec", "print('back')").stdout == b"back\r\n"
    board.stop()
    got, _ = sf.read(board.files["tx"], dtype="int16")
    got = got if got.ndim == 1 else got[:, 0]
    k = int(np.flatnonzero(got)[0])
    assert np.array_equal(got[k:k + src.size], src[np.flatnonzero(src)[0]:][: got.size - k])
    ev = board.events()
    # one rate change up and one down for the whole command: the upload, the link probe, the
    # wire coder and the stream all ran in one loader at 921600 ...
    assert [e["baudrate"] for e in events(board)] == [921600, 115200]
    # ... which was one raw-REPL exec (after the bootstrap's), not one per piece of the agent
    execs = [e for e in ev if e.get("ev") == "exec" and e.get("state") == "start"]
    assert len(execs) <= 3, execs  # bootstrap, loader (and mpremote's)


def _bytes_in(board) -> int:
    """What the host sent the virtual board in all (its summary line on stop)."""
    m = re.search(r"\bin (\d+) B", board.summary)
    assert m, board.summary
    return int(m.group(1))


@pytest.mark.slow
def test_the_agent_goes_compressed_where_the_firmware_has_deflate(sim, tmp_path):
    src = _speech_like(tmp_path / "speech.wav", seconds=0.05)
    took = {}
    for deflate in (True, False):
        board = sim("esp32")
        if not deflate:  # a build without the module (MICROPY_PY_DEFLATE off): the loader's import finds nothing
            mpremote("connect", board.path, "exec", "import sys; sys.modules['deflate'] = None")
        r = i2s("play", "--no-probe", "--baud", "921600", "-p", board.path, tmp_path / "speech.wav",
                check=0, timeout=90)
        assert "baud" not in r.stderr, r.stderr
        board.stop()
        got, _ = sf.read(board.files["tx"], dtype="int16")
        got = got if got.ndim == 1 else got[:, 0]
        k = int(np.flatnonzero(got)[0])
        assert np.array_equal(got[k:k + src.size], src[np.flatnonzero(src)[0]:][: got.size - k])
        took[deflate] = _bytes_in(board)
    # the same command and audio: the difference is the agent's modules, a third of their text
    plain = sum(len(c) for c in agent_code.upload_chunks([*agent_code.CORE_MODULES, "i2s_play"]))
    assert took[False] - took[True] > 0.5 * plain, (took, plain)


HOST_STOPS = {
    # after `I2S:UP`: the board has switched, the host never sends its probe
    "switch": """
orig = early.EarlySwitch.switch
def stop_in_switch(self):
    self.port.read_until(early.UP, 2.0)
    self.port.serial.baudrate = self.rate
    print('stopped', flush=True)
    time.sleep(60)
early.EarlySwitch.switch = stop_in_switch
""",
    # the third piece of code: its header and first window sent, the rest never
    "upload": """
orig = early.EarlySwitch._send
calls = []
def stop_in_upload(self, kind, body):
    calls.append(kind)
    if len(calls) < 3:
        return orig(self, kind, body)
    self.port.write(early.header(kind, len(body)) + body[:early.PIECE])
    print('stopped', flush=True)
    time.sleep(60)
early.EarlySwitch._send = stop_in_upload
""",
}


@pytest.mark.slow
@pytest.mark.parametrize("moment", sorted(HOST_STOPS))
def test_killed_host_during_the_early_switch_leaves_the_board_at_115200(sim, moment):
    board = sim("esp32", capture=False)
    host = subprocess.Popen([sys.executable, "-c", f"""
import time
from i2scli.link import early
{HOST_STOPS[moment]}
from i2scli.link import connect
with connect({board.path!r}, baud=921600, expect={{'mode': 'tx'}}) as a:
    print('connected', flush=True)
"""], stdout=subprocess.PIPE, text=True, env=ENV)
    assert host.stdout.readline().split() == ["stopped"]
    os.kill(host.pid, signal.SIGKILL)
    host.wait()
    killed = time.monotonic()
    # Listen at 115200 without writing: the loader's watchdog (1 s of quiet) puts the REPL UART
    # back to 115200 and the raw REPL closes the exec with its prompt
    seen, back = raw_prompt(board.path, killed, 15)
    assert seen.endswith(b"\x04>"), seen[-200:]
    assert back < early.WATCH_MS / 1000 + 2.0, back  # within the watchdog plus 2 s
    assert mpremote("connect", board.path, "exec", "print('back')").stdout == b"back\r\n"
    board.stop()
    assert [e["baudrate"] for e in events(board)] == [921600, 115200]


@pytest.mark.slow
def test_board_that_is_no_uart_refuses_the_early_switch_with_one_warning(sim, tmp_path):
    board = sim("fast")
    sf.write(tmp_path / "short.wav", np.full(800, 1000, np.int16), 16000, subtype="PCM_16")
    r = i2s("play", "-q", "--baud", "921600", "-p", board.path, tmp_path / "short.wav", check=0, timeout=90)
    warnings = [ln for ln in r.stderr.splitlines() if "baud" in ln]
    assert len(warnings) == 1 and "cannot change its REPL rate" in warnings[0], r.stderr
