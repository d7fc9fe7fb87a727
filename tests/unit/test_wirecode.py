"""The wire coder: host coder round trips, and the board coder in real MicroPython."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from i2scli.audio import wirecode as wc

MICROPYTHON = Path(sys.executable).parent / "micropython"

# Runs on the board side: records "<op><bits><channels><u32 len><bytes>" on stdin, op D (decode)
# or E (encode); answers "<i32 result><u32 len><bytes>" each. Ops H, G: heap of 100 decodes, encodes.
BOARD = """
import sys, gc
sys.path.insert(0, FIRMWARE)
import wirecode
inp = sys.stdin.buffer
out = sys.stdout.buffer
dst = bytearray(70000)
def rd(n):
    b = b''
    while len(b) < n:
        c = inp.read(n - len(b))
        if not c:
            return None
        b += c
    return b
while True:
    h = rd(7)
    if h is None:
        break
    op = h[0]; bits = h[1]; ch = h[2]; n = h[3] | h[4] << 8 | h[5] << 16 | h[6] << 24
    src = rd(n)
    if op == 68:
        r = wirecode.Decoder(bits, ch).decode(src, n, dst)
    elif op == 69:
        r = wirecode.Encoder(bits, ch).encode(src, n, dst)
    else:  # heap: 100 decodes after a warm-up; the second round, once one-time allocations are done
        f = wirecode.Decoder(bits, ch).decode if op == 72 else wirecode.Encoder(bits, ch).encode
        f(src, n, dst)
        for rnd in (0, 1):
            gc.collect()
            gc.disable()
            a = gc.mem_alloc()
            i = 0
            while i < 100:
                f(src, n, dst)
                i += 1
            r = gc.mem_alloc() - a
            gc.enable()
    m = r if op in (68, 69) and r > 0 else 0
    out.write((r & 0xFFFFFFFF).to_bytes(4, "little"))
    out.write(m.to_bytes(4, 'little'))
    out.write(bytes(dst[:m]))
"""


def board(jobs: list[tuple[str, int, int, bytes]]) -> list[tuple[int, bytes]]:
    """Run every job through firmware/wirecode.py in one MicroPython process."""
    if not MICROPYTHON.exists():
        pytest.skip("no MicroPython unix port in the venv")
    stdin = b"".join(op.encode() + struct.pack("<BBI", bits, ch, len(p)) + p for op, bits, ch, p in jobs)
    script = f"FIRMWARE = {str(ROOT / 'firmware')!r}\n" + BOARD
    r = subprocess.run([str(MICROPYTHON), "-X", "heapsize=4M", "-c", script], input=stdin, capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    res, buf = [], r.stdout
    while buf:
        code, n = struct.unpack_from("<iI", buf)
        res.append((code, buf[8 : 8 + n]))
        buf = buf[8 + n :]
    assert len(res) == len(jobs)
    return res


def pcm(x, bits: int) -> bytes:
    return np.asarray(x).astype("<i2" if bits == 16 else "<i4").tobytes()


# ---- signals ------------------------------------------------------------------------------

RATE = 48000


def harmonics(seconds: float, f0s, partials: int, env_hz: float, noise: float, seed: int) -> np.ndarray:
    """Sums of harmonics under slow envelopes plus a little noise, int16 mono."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    y = np.zeros_like(t)
    for i, f0 in enumerate(f0s):
        f = f0 * (1 + 0.02 * np.sin(2 * np.pi * 0.3 * t + i))  # vibrato / intonation
        phase = 2 * np.pi * np.cumsum(f) / RATE
        env = np.clip(np.sin(2 * np.pi * env_hz * t + i), 0, None) ** 2
        for h in range(1, partials + 1):
            y += env * np.sin(h * phase) / h**1.5
    y = y / np.abs(y).max() * 0.6 * 32767 + rng.normal(0, noise, t.size)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def speech(seconds=2.0, seed=1) -> np.ndarray:
    return harmonics(seconds, [140], 20, 3.0, 20, seed)  # one voice, syllables at ~6 Hz


def music(seconds=2.0, seed=2) -> np.ndarray:
    return harmonics(seconds, [220, 277, 330, 110], 10, 0.7, 20, seed)  # a chord with a bass


def stereo(mono: np.ndarray) -> np.ndarray:
    return np.stack([mono, np.roll(mono, 7) // 2 * 2 + 1], axis=1).ravel()


def frames(x: bytes, size: int = 4096):
    return [x[i : i + size] for i in range(0, len(x), size)]


# ---- host coder ---------------------------------------------------------------------------

EXTREMES = {16: [-32768, 32767, 0, -1, 1], 32: [-(2**31), 2**31 - 1, 0, -1, 1, 1 << 8, -(1 << 31) + 256]}


@st.composite
def blocks(draw):
    bits = draw(st.sampled_from([16, 32]))
    ch = draw(st.sampled_from([1, 2]))
    n = draw(st.integers(1, 1200))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["noise", "extremes", "walk", "shifted", "silence", "dc", "square", "alt"]))
    rng = np.random.default_rng(seed)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    size = n * ch
    if kind == "noise":
        x = rng.integers(lo, hi, size, endpoint=True)
    elif kind == "extremes":
        x = rng.choice(EXTREMES[bits], size)
    elif kind == "walk":
        x = np.clip(np.cumsum(rng.integers(-(1 << (bits - 8)), 1 << (bits - 8), size)), lo, hi)
    elif kind == "shifted":
        x = rng.integers(-100, 100, size) << int(rng.integers(0, bits - 7))
    elif kind == "silence":
        x = np.zeros(size, np.int64)
    elif kind == "dc":
        x = np.full(size, int(rng.integers(lo, hi)))
    elif kind == "square":
        x = np.where((np.arange(size) // int(rng.integers(1, 50))) % 2, hi, lo)
    else:
        x = np.tile([hi, lo], size)[:size]
    return bits, ch, pcm(x, bits)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks())
def test_host_roundtrip(block):
    bits, ch, p = block
    coded = wc.encode(p, bits, ch)
    assert len(coded) <= len(p) + 1
    assert wc.decode(coded, bits, ch) == p


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks(), st.integers(1, 300))
def test_batch_encoder_codes_each_frame_as_the_single_one(block, frame_len):
    # the stream codes many payloads in one vectorised pass: byte for byte what encode() makes
    bits, ch, p = block
    fb = frame_len * bits // 8 * ch
    got = wc.encode_many(p, fb, bits, ch)
    assert got == [wc.encode(p[i:i + fb], bits, ch) for i in range(0, len(p), fb)]
    assert b"".join(wc.decode(c, bits, ch) for c in got) == p


@pytest.mark.slow
def test_host_rejects_damage():
    p = pcm(speech(0.05), 16)
    coded = bytearray(wc.encode(p, 16, 1))
    assert coded[0] == wc.CODED
    caught = 0
    for i in range(wc.HEADER, len(coded), 7):
        bad = bytearray(coded)
        bad[i] ^= 0x10
        try:
            caught += wc.decode(bytes(bad), 16, 1) != p
        except wc.WireCodeError:
            caught += 1
    assert caught == len(range(wc.HEADER, len(coded), 7))  # never garbage accepted


def ratio(x: bytes, bits: int, ch: int) -> float:
    return wc.estimate_ratio(x, bits, ch, 4096)


@pytest.mark.slow
def test_ratios():
    sp, mu = pcm(stereo(speech()), 16), pcm(stereo(music()), 16)
    r = {"speech": ratio(sp, 16, 2), "music": ratio(mu, 16, 2),
         "speech-32": ratio(pcm(stereo(speech()).astype(np.int64) << 16, 32), 32, 2),
         "music-32": ratio(pcm(stereo(music()).astype(np.int64) << 16, 32), 32, 2)}
    print(r)
    assert r["speech"] >= 1.5 and r["music"] >= 1.5
    assert r["speech-32"] >= 2.5 and r["music-32"] >= 2.5


@pytest.mark.parametrize("size", [256, 500, 1024, 4096])  # 500: the DATA payload of esp32 and rp2 play
def test_noise_goes_raw(size):
    x = pcm(np.random.default_rng(3).integers(-32768, 32768, 48000), 16)
    coded = [wc.encode(f, 16, 2) for f in frames(x, size)]
    assert all(c[0] == wc.RAW for c in coded)
    assert sum(map(len, coded)) / len(x) - 1 <= 0.005


# ---- board coder in MicroPython ------------------------------------------------------------


def corpus(seed: int = 5) -> list[tuple[int, int, bytes]]:
    """Every named case, both widths and channel counts, random frame sizes."""
    rng = np.random.default_rng(seed)
    cases = []
    for bits in (16, 32):
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        for ch in (1, 2):
            # 500 // frame bytes: the frames of a 500-byte DATA payload (esp32, rp2 play; protocol 2)
            for n in (1, 2, 3, 17, int(rng.integers(4, 1200)), 500 // (bits // 8 * ch), 1024):
                size = n * ch
                up = 0 if bits == 16 else 16
                for x in (np.zeros(size, np.int64), np.full(size, 1234 << up), np.full(size, lo),
                          np.where(np.arange(size) // ch // 8 % 2, hi, lo), np.tile([hi, lo], size)[:size],
                          rng.integers(lo, hi, size, endpoint=True), rng.choice(EXTREMES[bits], size),
                          np.resize(speech(0.03, int(rng.integers(99))), size).astype(np.int64) << up,
                          np.resize(music(0.03, int(rng.integers(99))), size).astype(np.int64) << (up // 2)):
                    cases.append((bits, ch, pcm(x, bits)))
    return cases


def test_board_decodes_host_coding():
    cases = corpus()
    coded = [wc.encode(p, bits, ch) for bits, ch, p in cases]
    assert sum(c[0] == wc.CODED for c in coded) > len(cases) // 3  # short frames go raw
    res = board([("D", bits, ch, c) for (bits, ch, _), c in zip(cases, coded)])
    for (bits, ch, p), (code, out) in zip(cases, res):
        assert code == len(p) and out == p, (bits, ch, len(p), code)


def test_host_decodes_board_coding():
    cases = corpus(6)
    res = board([("E", bits, ch, p) for bits, ch, p in cases])
    n_coded = 0
    for (bits, ch, p), (code, out) in zip(cases, res):
        assert code == len(out) and len(out) <= len(p) + 1
        n_coded += out[0] == wc.CODED
        assert wc.decode(out, bits, ch) == p
    assert n_coded > len(cases) // 3


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(blocks(), min_size=8, max_size=8))
def test_property_host_board(batch):
    """Hypothesis blocks, both ways: host encoder -> board decoder, board encoder -> host decoder."""
    jobs = [("D", b, c, wc.encode(p, b, c)) for b, c, p in batch] + [("E", b, c, p) for b, c, p in batch]
    res = board(jobs)
    for (_, _, p), (code, out) in zip(batch, res[: len(batch)]):
        assert code == len(p) and out == p
    for (bits, ch, p), (_, out) in zip(batch, res[len(batch) :]):
        assert wc.decode(out, bits, ch) == p


def test_board_ratio_close_to_host():
    x = pcm(stereo(music(1.0)), 16)
    res = board([("E", 16, 2, f) for f in frames(x)])
    board_ratio = len(x) / sum(len(out) for _, out in res)
    print("board encoder ratio", board_ratio, "host", ratio(x, 16, 2))
    assert board_ratio >= 1.5


@pytest.mark.slow
def test_board_rejects_damage():
    p = pcm(stereo(speech(0.05)), 16)
    coded = wc.encode(p, 16, 2)
    bads = []
    for i in range(1, len(coded)):
        for bit in (0x01, 0x80):
            bad = bytearray(coded)
            bad[i] ^= bit
            bads.append(bytes(bad))
    bads += [coded[:-1], coded + b"\x00", b"\x07" + coded[1:], b"", coded[:5]]
    res = board([("D", 16, 2, b) for b in bads])
    for (code, out) in res:
        assert code < 0 or out == p  # an error code, never other audio
    assert sum(code < 0 for code, _ in res) == len(bads)


def test_board_coder_allocates_nothing():
    """gc.mem_alloc() across 100 calls (a bound method taken once, as the agent would)."""
    m = stereo(music(0.05))
    blocks = [(16, pcm(m, 16)[:4096]), (32, pcm(m.astype(np.int64) << 8, 32)[:4096]),
              (16, pcm(np.random.default_rng(1).integers(-32768, 32768, 2048), 16))]
    jobs = [("H", bits, 2, wc.encode(p, bits, 2)) for bits, p in blocks] + [("G", bits, 2, p) for bits, p in blocks]
    assert [wc.encode(p, bits, 2)[0] for bits, p in blocks] == [wc.CODED, wc.CODED, wc.RAW]
    assert [code for code, _ in board(jobs)] == [0] * 6


def test_worked_example_of_the_docs():
    """docs/protocol.md, "Worked example": the exact bytes, and the board decodes them."""
    p = pcm([1000, 1004, 1010, 1014, 1020, 1026, 1030, 1036], 16)
    coded = bytes.fromhex("01 08 00 cc 1f 3c 8e 06 00 00 00 03 e8 12 9a 40")
    assert wc.encode(p, 16, 1) == coded
    (dcode, out), (ecode, enc) = board([("D", 16, 1, coded), ("E", 16, 1, p)])
    assert (dcode, out) == (16, p)
    assert enc[0] == wc.RAW and ecode == 17  # the board encoder gives up a few bytes early
