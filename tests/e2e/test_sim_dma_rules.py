"""The virtual rp2 puts on SD what MicroPython's rp2 port does: tests/e2e/i2s_scripts/dma_rules.py
(a starved ring, odd-sized writes, an irq write, a blocking write into a full ring) against a
reference written from the port's C source, byte for byte. The same script is for the rp2
firmware board: run there, its capture must give the same frames (`expected_pins` below)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import mpremote

pytestmark = pytest.mark.slow  # every test here takes 1 s or more on a loaded 2-core machine

SCRIPT = Path(__file__).parent / "i2s_scripts" / "dma_rules.py"
RATE, FB, HF, IBUF = 4000, 4, 32, 1024  # the script's bus: 16-bit stereo, 32 frames a DMA half
HALF = 128  # SIZEOF_HALF_DMA_BUFFER_IN_BYTES (ports/rp2/machine_i2s.c)
NB_COPY = 512  # SIZEOF_NON_BLOCKING_COPY_IN_BYTES


def pattern(n: int, start: int) -> bytes:
    return bytes(1 + (start + i) % 251 for i in range(n))


def parse(out: str) -> tuple[list[tuple[str, int, int, int, int]], int]:
    steps, end = [], 0
    for line in out.splitlines():
        w = line.split()
        if w and w[0] == "step":
            steps.append((w[1], int(w[2]), int(w[3]), int(w[4]), int(w[5])))
        elif w and w[0] == "end":
            end = int(w[1])
    return steps, end


def frame(us: int) -> int:
    return us * RATE // 1_000_000


def expected_pins(steps, frames: int) -> tuple[bytes, list[int]]:
    """The bytes rp2's TX DMA clocks out, from ports/rp2/machine_i2s.c and extmod/machine_i2s.c:
    two chained DMA channels play the two halves of a zeroed 256-byte buffer from init; at the
    end of each half its interrupt first copies a pending non-blocking write into the ring
    (512 bytes, when that much room is free, or the rest), then refills the half it just
    played with 128 ring bytes if the ring holds that many, else with zeros (feed_dma). The
    ring holds ibuf - 1 bytes; a blocking write pushes bytes whenever there is room. Also: the
    halves at whose end each non-blocking write was all in the ring (its callback)."""
    cap = IBUF - 1
    ring = bytearray()
    halves = [bytes(HALF), bytes(HALF)]
    out = bytearray()
    sent = 0
    writes = []  # (frame, io, data)
    for io, n, a, _b, _c in steps:
        writes.append((frame(a), io, pattern(n, sent)))
        sent += n
    block = b""  # the rest of a blocking write waiting for room
    nb = b""  # the rest of a non-blocking write
    done = []
    h = 0
    while len(out) < frames * FB:
        out += halves[h % 2]
        for f, io, data in writes:
            if h * HF <= f < (h + 1) * HF:
                if io == "irq":
                    nb = data
                else:
                    k = min(len(data), cap - len(ring))
                    ring += data[:k]
                    block = data[k:]
        # the interrupt at the end of half h
        if nb:
            k = min(NB_COPY, len(nb))
            if cap - len(ring) >= k:
                ring += nb[:k]
                nb = nb[k:]
                if not nb:
                    done.append(h)
        if len(ring) >= HALF:
            halves[h % 2] = bytes(ring[:HALF])
            del ring[:HALF]
        else:
            halves[h % 2] = bytes(HALF)
        if block:
            k = min(len(block), cap - len(ring))
            ring += block[:k]
            block = block[k:]
        h += 1
    return bytes(out[:frames * FB]), done


def run_script(sim, profile: str = "rp2"):
    """The script on a fresh board: its steps and the pins' capture. Each step must start
    inside the DMA half it aimed at, as on a board; a machine too loaded for that runs it again."""
    for _ in range(5):
        board = sim(profile, events=False)
        out = mpremote("connect", board.path, "run", str(SCRIPT), timeout=60).stdout.decode()
        board.stop()
        steps, end = parse(out)
        assert len(steps) == 5 and end, out
        aimed = (10, 20, 22, 30, 45)
        if all(frame(a) // HF == k and (io != "blocking" or n > 1000 or frame(b) // HF == k)
               and (io != "irq" or frame(c) // HF <= 34)  # a callback seen late
               for (io, n, a, b, c), k in zip(steps, aimed)):
            data, _ = sf.read(board.files["tx"], dtype="int16")
            return steps, data.astype("<i2").tobytes()
    raise AssertionError("five runs on a loaded machine missed their DMA halves")


def test_virtual_rp2_puts_the_ports_frames_on_sd(sim):
    steps, wire = run_script(sim)
    want, done = expected_pins(steps, len(wire) // FB)
    assert len(wire) // FB >= 90 * HF
    assert wire == want
    # the irq write's callback: after the interrupt that copied its last piece (512, then 188)
    assert done == [31] and frame(steps[3][4]) // HF == 32
    # what those rules mean here, in frames of the pins
    w = np.frombuffer(wire, "<u2").reshape(-1, 2)
    silent = np.all(w == 0, axis=1)
    assert silent[:12 * HF].all()  # the first audio waits for the half after its write's
    assert not silent[12 * HF:15 * HF].any() and silent[15 * HF:21 * HF].all()  # 96 frames, then zeros
    assert wire.count(b"\0") >= (90 - 60) * HF * FB  # the end: the ring ran dry for good


@pytest.mark.firmware
@pytest.mark.timeout(240)
def test_the_real_rp2_firmware_puts_the_same_frames_on_sd(sim):
    # MicroPython's own rp2 port in the RP2040 emulator (tests/firmware/test_rp2_firmware.py): the script's
    # frames on its pins are the reference's, so the virtual rp2's (test above) are the port's.
    from i2scli.sim.firmware_board import FirmwareUnavailable, check_ready

    try:
        check_ready()
    except FirmwareUnavailable as e:
        pytest.skip(f"firmware board unavailable: {e}")
    steps, wire = run_script(sim, "rp2-firmware")
    want, done = expected_pins(steps, len(wire) // FB + 1)
    # The harness decodes whole frames from the pins: the bus's first frame (zeros) is not one (the
    # PIO program's first rising edge clocks a bit ahead of it, the last bit of no right slot), so
    # its capture starts at the bus's frame 1.
    assert want[:FB] == bytes(FB)
    assert len(wire) // FB >= 90 * HF - 1
    assert wire == want[FB:]
    # The callback: the interrupt that copied the last piece ends half 31 (it may be seen a
    # little before that half's last frame leaves the pins: the DMA runs ahead by the PIO FIFO).
    assert done == [31] and frame(steps[3][4]) // HF in (31, 32)
