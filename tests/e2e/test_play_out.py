"""The end of a play: the agent pushes exactly the silence the port's DMA needs to take the last
audio, waits for what the ring really holds, and only then deinits (which would discard it).
Every sample of every stream reaches the pins, whatever its length against the DMA's halves,
its format, the port's DMA (rp2/stm32 halves, esp32 buffers) or the io style; and no port that
counts underruns sees the ring run dry at the end (docs/protocol.md, the end of a play)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import i2s
from test_agent import bus_cfg, payload_for

from i2scli.link import connect

RATE = 8000


def pattern(frames: int, channels: int, seed: int) -> np.ndarray:
    """16-bit samples without a zero (any zero on the pins inside the audio is a gap)."""
    n = np.arange(frames * channels) * 7 + seed * 1000
    return (n % 30000 + 1).astype("<i2")


def pins(path, channels: int) -> np.ndarray:
    """The capture's samples as the stream sent them (mono: the left slot; both carry it)."""
    w = sf.read(path, dtype="int16")[0]
    return (w[:, 0] if channels == 1 else w).reshape(-1)


# lengths against the DMA's 32-frame halves (16-bit) and 256-frame esp32 buffers: one frame,
# a part of a half, a half and a frame, and more than the ring
LENGTHS = (1, 37, 33, 1001)


@pytest.mark.parametrize("profile", ["rp2", "stm32", "esp32"])
@pytest.mark.parametrize("channels", [2, 1])
def test_every_frame_of_short_and_odd_streams_reaches_the_pins(profile, channels, tmp_path):
    cap = tmp_path / "tx.wav"
    fmt = "stereo" if channels == 2 else "mono"
    sent = []
    with connect(f"sim://{profile}?tx_capture={cap}") as agent:
        payload = min(payload_for(agent.hello, 2 * channels), 240)
        ios = ["blocking", "irq"] if profile == "rp2" else ["blocking"]
        for io in ios:
            for k, n in enumerate(LENGTHS):
                p = pattern(n, channels, k)
                cfg = bus_cfg(profile, "tx", rate=RATE, fmt=fmt, ibuf=2048, payload=payload, io=io)
                s = agent.play(cfg, [p.tobytes()])
                assert s["reason"] == "end" and s["frames"] == n, (io, n, s)
                port = s.get("port_xruns") or {}
                assert (s["underruns"], port.get("underruns", 0)) == (0, 0), (io, n, s)
                sent.append(p)
    w = pins(cap, channels)
    assert np.array_equal(w[w != 0], np.concatenate(sent))  # every sample, in order, none lost


def test_32_bit_mono_and_a_ring_longer_than_the_stream(tmp_path):
    cap = tmp_path / "tx.wav"
    p = (np.arange(1, 2 * 333, 2) * 65537).astype("<i4")  # 333 frames of 32-bit mono, no zero
    with connect(f"sim://rp2?tx_capture={cap}") as agent:
        payload = min(payload_for(agent.hello, 4), 240)
        s = agent.play(bus_cfg("rp2", "tx", rate=RATE, bits=32, fmt="mono", ibuf=16384, payload=payload),
                       [p.tobytes()])
    assert s["frames"] == 333 and (s["underruns"], s["port_xruns"]["underruns"]) == (0, 0)
    w = sf.read(cap, dtype="int32")[0][:, 0]
    assert np.array_equal(w[w != 0], p)


def test_a_short_file_gets_a_ring_no_longer_than_itself_and_plays_whole(tmp_path):
    x = (np.arange(1, 2 * 2400 + 1) % 30000 + 1).astype(np.int16).reshape(-1, 2)  # 50 ms at 48 kHz
    sf.write(tmp_path / "cue.wav", x, 48000, subtype="PCM_16")
    cap = tmp_path / "tx.wav"
    r = i2s("play", "--json", "-p", f"sim://rp2?tx_capture={cap}", tmp_path / "cue.wav", check=0)
    s = json.loads(r.stdout)
    st = s["settings"]
    assert st["ring_from"] == "stream" and 0.05 <= st["buffer_time"] < 0.055, st
    assert "ms: the whole stream)" in r.stderr
    assert s["underruns"] == 0 and s["frames"] == 2400
    w = sf.read(cap, dtype="int16")[0]
    assert np.array_equal(w[np.any(w != 0, axis=1)], x)


@pytest.mark.parametrize("arg", ["20ms", "20000", "0.02s"])
def test_buffer_time_sets_the_ring_in_time_a_bare_number_is_microseconds(arg, tmp_path):
    r = i2s("play", "--json", "--no-probe", "--buffer-time", arg, "-p", "sim://rp2", "--tone", "440",
            "-d", "0.1s", "-r", "48000", check=0)
    st = json.loads(r.stdout)["settings"]
    # 20 ms of 48 kHz 16-bit stereo = 3840 bytes, and the byte the ring keeps free: 31 DMA halves
    assert (st["ibuf"], st["ring_from"]) == (31 * 128, "buffer-time")
    assert 0.02 <= st["buffer_time"] < 0.021


def test_ibuf_and_buffer_time_together_are_a_usage_error():
    r = i2s("play", "--ibuf", "4096", "-B", "50ms", "-p", "sim://rp2", "--tone", "440", check=2)
    assert "--ibuf or --buffer-time" in r.stderr


@pytest.mark.parametrize("arg", ["0", "500us", "2min", "abc"])
def test_a_buffer_time_out_of_range_is_refused(arg):
    r = i2s("play", "--buffer-time", arg, "-p", "sim://rp2", "--tone", "440", check=2)
    assert "--buffer-time" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("io", ["blocking", "irq", "asyncio"])
def test_an_esp32_underrun_costs_the_gap_the_agent_counts_and_no_audio(io, tmp_path):
    # A 400 ms stall of the link (after the upload, even on a loaded machine) empties the
    # esp32's DMA buffers. The port then plays zeros to a buffer boundary, and a writer left in
    # mid-buffer would put the rest of that buffer a circle later or write over it (docs/sim.md,
    # the esp32 rules): the agent finishes the buffer with zeros first (in irq and asyncio a
    # write of its own, done before the audio's), so every frame still plays, in order, and its
    # count of the gap is the zeros the pins show (blocking: the port's count, frame for frame).
    x = ((np.arange(16000 * 4 * 2) % 30000) + 1).astype(np.int16).reshape(-1, 2)
    sf.write(tmp_path / "s.wav", x, 16000, subtype="PCM_16")
    cap = tmp_path / "tx.wav"
    r = i2s("play", "--json", "--io", io, "-p", f"sim://esp32?tx_capture={cap}&fault=stall:at=2.5s,for=400ms",
            tmp_path / "s.wav", check=0, timeout=90)
    s = json.loads(r.stdout)
    port = s["board"]["port_xruns"]
    # (a loaded machine may starve the virtual link once more: every gap is counted as well)
    assert port["underruns"] == s["board"]["underruns"] == s["underruns"] >= 1
    lost = s["board"]["lost_frames"]
    assert lost >= 256  # the stall less the ring (less on a loaded machine: the ring was fuller)
    # the zeros the agent wrote to finish its buffer play when that buffer's turn is still to
    # come (irq: the audio's own write may have been in flight): data to the port, a gap on the pins
    assert lost - port["underrun_frames"] in range(1 if io == "blocking" else 256 * s["underruns"])
    w = pins(cap, 2).reshape(-1, 2)
    audio = np.any(w != 0, axis=1)
    assert np.array_equal(w[audio], x)
    at = np.flatnonzero(audio)
    assert s["board"]["lost_frames"] == at[-1] + 1 - at[0] - len(x)  # the zeros the pins show
