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


# -- esp32 ------------------------------------------------------------------------------------
# tests/e2e/i2s_scripts/dma_rules_esp32.py on the virtual esp32 (the port: ports/esp32/
# machine_i2s.c on ESP-IDF's components/esp_driver_i2s/i2s_common.c; docs/sim.md cites the lines)
ESP32_SCRIPT = Path(__file__).parent / "i2s_scripts" / "dma_rules_esp32.py"
E_RATE, E_FB, E_F = 8000, 4, 256  # 16-bit stereo TX; DMA_BUF_LEN_IN_I2S_FRAMES
E_TX_BUFS = 3072 // (E_F * E_FB)  # get_dma_buf_count: ibuf // (256 * DMA frame bytes), at least 2
E_RX_BUFS = max(4096 // (E_F * 8), 2)  # RX DMA frames are 32-bit stereo whatever the format


def esp32_pins(steps, frames: int) -> tuple[bytes, int]:
    """The bytes the esp32 port's TX DMA clocks out, and its first audio frame: N zeroed buffers
    of 256 frames in a circle, played from init; at each buffer's end its interrupt clears it
    (auto_clear) and queues it in a queue of N - 1 that drops its oldest entry when full. A write
    (blocking, or the irq task's, both with portMAX_DELAY) fills the buffer it holds from its
    rw_pos, then takes the oldest queued buffer (rw_pos 0), waiting for one. Bytes written into
    the buffer being played go out in this pass if the DMA has not reached them yet."""
    bb = E_F * E_FB
    bufs = [bytearray(bb) for _ in range(E_TX_BUFS)]
    queue: list[int] = []
    cur, rw, pending, first = None, 0, b"", -1
    sent, writes = 0, []
    for _io, n, a, _b, _c in steps:
        writes.append((frame_at(a), pattern(n, sent)))
        sent += n
    out = bytearray()
    p = 0
    while len(out) < frames * E_FB:
        x = p % E_TX_BUFS
        playing = bytearray(bufs[x])

        def write(dma_at: int, p: int, x: int, playing: bytearray) -> None:
            # the writer runs with the DMA at frame dma_at of buffer x, pass p
            nonlocal cur, rw, pending, first
            while pending:
                if cur is None or rw == bb:
                    if not queue:
                        return
                    cur, rw = queue.pop(0), 0
                k = min(bb - rw, len(pending))
                bufs[cur][rw:rw + k] = pending[:k]
                if first < 0:
                    first = (p + (cur - x) % E_TX_BUFS) * E_F + rw // E_FB
                if cur == x:
                    lo = max(rw, dma_at * E_FB)
                    playing[lo:rw + k] = bufs[cur][lo:rw + k]
                rw += k
                pending = pending[k:]

        write(0, p, x, playing)  # a write blocked at the last buffer's end goes on at once
        for f, data in writes:
            if p * E_F <= f < (p + 1) * E_F:
                pending = data
                write(f - p * E_F, p, x, playing)
        out += playing
        bufs[x][:] = bytes(bb)
        if len(queue) == E_TX_BUFS - 1:
            queue.pop(0)
        queue.append(x)
        p += 1
    return bytes(out[:frames * E_FB]), first


def frame_at(us: int) -> int:
    return us * E_RATE // 1_000_000


def esp32_reads(reads) -> list[tuple[int, int]]:
    """The frames each RX read gets (first, last): the DMA fills N buffers of 256 frames in a
    circle from init; each is queued at its end in a queue of N - 1 that drops its OLDEST
    buffer when full; readinto takes the buffer it holds, then the oldest queued, waiting."""
    queue: list[int] = []  # buffers by their pass (its frames: 256 * pass on)
    held = 0  # frames left of the buffer held
    pos = 0  # its next frame
    ended = 0  # buffers ended before the read came
    got = []
    for n, _f0, _f1, _br, a, _b in reads:
        while (ended + 1) * E_F <= frame_at(a):  # the buffers that ended before the read
            queue.append(ended)
            ended += 1
            if len(queue) > E_RX_BUFS - 1:
                queue.pop(0)
        start, need = None, n
        while need:
            if not held:
                if not queue:  # the read waits for the next buffer's end, and takes it
                    queue.append(ended)
                    ended += 1
                pos, held = queue.pop(0) * E_F, E_F
            start = pos if start is None else start
            k = min(need, held)
            pos, held, need = pos + k, held - k, need - k
        got.append((start, pos - 1))
    return got


def run_esp32_script(sim, profile: str):
    """The script on a fresh virtual esp32: TX steps, reads, the pins' capture, the events. Each
    step must start in the buffer pass it aimed at; a machine too loaded runs it again."""
    import json

    for _ in range(5):
        board = sim(profile, "--rx-source", "ramp")
        out = mpremote("connect", board.path, "run", str(ESP32_SCRIPT), timeout=60).stdout.decode()
        board.stop()
        steps, end = parse(out)
        reads = [tuple(int(w) for w in line.split()[1:]) for line in out.splitlines() if line.startswith("read")]
        assert len(steps) == 5 and end and len(reads) == 3, out
        aimed = ((0, 2), (6, 2), (10, 1), (16, 2), (22, 2))
        # (within 40 frames of the aim: the write into buffer 1 at rw_pos 482, frame 120, stays ahead of the DMA)
        if all(0 <= frame_at(a) - k * E_F - q * 64 < 40 for (_io, _n, a, _b, _c), (k, q) in zip(steps, aimed)) \
                and frame_at(reads[0][4]) // E_F == 5 and frame_at(reads[2][4]) // E_F == 10:
            data, _ = sf.read(board.files["tx"], dtype="int16")
            events = [json.loads(line) for line in Path(board.files["events"]).read_text().splitlines()]
            return steps, reads, data.astype("<i2").tobytes(), events
    raise AssertionError("five runs on a loaded machine missed their DMA buffers")


@pytest.mark.parametrize("profile", ["esp32", "esp32s3"])
def test_virtual_esp32_puts_the_ports_frames_on_sd_and_drops_the_oldest_rx_buffer(sim, profile):
    steps, reads, wire, events = run_esp32_script(sim, profile)
    frames = len(wire) // E_FB
    want, first = esp32_pins(steps, frames)
    assert frames >= 30 * E_F
    assert wire == want
    w = np.frombuffer(wire, "<u2").reshape(-1, 2)
    silent = np.all(w == 0, axis=1)
    # the first audio: the first write (in buffer 0) waits for its end, gets buffer 0, and that
    # plays again after the circle: frame 256·N, never mid-buffer
    assert first == E_TX_BUFS * E_F and silent[:first].all() and not silent[first]
    # 476 bytes left in buffer 1: its 119 frames, then zeros to the buffer's end, then a silent
    # buffer (whole-buffer granules); the 6-byte write plays at rw_pos 476 of buffer 1 a circle later
    assert not silent[first:first + E_F + 119].any() and silent[first + E_F + 119:first + 3 * E_F].all()
    assert silent[7 * E_F:7 * E_F + 119].all() and not silent[7 * E_F + 119:7 * E_F + 121].any()
    # the irq write's audio is reordered: its last 110 bytes play (buffer 2) before its first 590 (buffer 0)
    assert wire[17 * E_F * E_FB:17 * E_F * E_FB + 110] == pattern(700, 1500 + 6 + 2000)[590:]
    # the blocking write's first 914 bytes went into buffer 2, which it then took again from its
    # queue and overwrote: buffer 2 plays the next 1024 bytes whole, the 914 never
    assert wire[23 * E_F * E_FB:24 * E_F * E_FB] == pattern(5000, 4206)[914:914 + 1024]
    # the port's counters: underruns as the pins show them, the RX drops whole 256-frame buffers
    tx_end, rx_end = [e for e in events if e.get("ev") == "i2s_deinit"]
    assert tx_end["underrun_frames"] == int(silent[first:].sum())
    assert [(f0, f1) for _n, f0, f1, _br, _a, _b in reads] == esp32_reads(reads)
    assert [r[:4] for r in reads] == [(256, 1024, 1279, 0), (512, 1280, 1791, 0), (512, 2304, 2815, 0)]
    assert rx_end["overrun_frames"] == 6 * E_F and rx_end["overruns"] == 2  # passes 0-3, then 7-8
    # the second read waits for buffers 5 and 6: it returns when frame 1791 has come in (and
    # the script has taken the time: a few frames at most)
    assert 7 * E_F <= frame_at(reads[1][5]) < 7 * E_F + 8
