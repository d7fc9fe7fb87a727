# A MicroPython script for an esp32 or esp32s3 board (any GPIO: TX on 13, 14, 15; RX on 16, 17,
# 18) that puts the port's DMA rules on the pins and in what it reads: TX (I2S(0)) with 3 DMA buffers of 256
# frames: a first write, writes of odd sizes that go on at the rw_pos of a buffer played since,
# an irq write, a blocking write larger than the circle; then RX (I2S(1), fed a counting
# pattern) with 2 DMA buffers left to overflow. It prints one line per TX step,
# "step kind bytes t_before t_after t_done" (µs since the TX bus was made), "end t_deinit", then
# one line per read, "read frames first last breaks t_before t_after" (frames of the counting
# pattern, µs since the RX bus was made). tests/e2e/test_sim_dma_rules.py checks them against
# the port's rules. Run: mpremote connect PORT run dma_rules_esp32.py
import struct
import time

from machine import I2S, Pin

RATE = 8000
PASS_US = 32000  # one DMA buffer of 256 frames


def pattern(n, start):
    """n bytes of a count that never makes a zero byte."""
    b = bytearray(n)
    for i in range(n):
        b[i] = 1 + (start + i) % 251
    return b


def at(t0, k, q):
    """Sleep until q quarters into DMA buffer pass k, away from its boundaries."""
    d = time.ticks_diff(time.ticks_add(t0, k * PASS_US + q * PASS_US // 4), time.ticks_us())
    if d > 0:
        time.sleep_us(d)


done = [False]


def on_done(_):
    done[0] = True


audio = I2S(0, sck=Pin(13), ws=Pin(14), sd=Pin(15), mode=I2S.TX, bits=16, format=I2S.STEREO,
            rate=RATE, ibuf=3072)  # 16-bit stereo: 3 buffers of 1024 bytes
t0 = time.ticks_us()
sent = 0
try:
    # (pass, quarter, io, bytes): each step's bytes continue one count
    for k, q, io, n in ((0, 2, "blocking", 1500),  # buffer 0 whole, 476 bytes of buffer 1
                        (6, 2, "blocking", 6),  # at buffer 1's rw_pos 476
                        (10, 1, "blocking", 2000),  # buffer 1 (playing) from 482, then 2, 0
                        (16, 2, "irq", 700),  # buffer 0 from 434, then buffer 2
                        (22, 2, "blocking", 5000)):  # buffer 2 from 110, then 2 again, 0, 1, 2
        buf = pattern(n, sent)
        at(t0, k, q)
        if io == "irq":
            audio.irq(on_done)
        a = time.ticks_diff(time.ticks_us(), t0)
        audio.write(buf)
        b = time.ticks_diff(time.ticks_us(), t0)
        c = b
        if io == "irq":
            while not done[0]:
                time.sleep_us(100)
            c = time.ticks_diff(time.ticks_us(), t0)
            audio.irq(None)
        print("step", io, n, a, b, c)
        sent += n
    at(t0, 30, 2)
    print("end", time.ticks_diff(time.ticks_us(), t0))
finally:
    audio.deinit()

mic = I2S(1, sck=Pin(16), ws=Pin(17), sd=Pin(18), mode=I2S.RX, bits=32, format=I2S.STEREO,
          rate=RATE, ibuf=4096)  # 2 buffers of 256 8-byte frames
t0 = time.ticks_us()
try:
    for k, n in ((5, 256), (None, 512), (10, 512)):
        buf = bytearray(8 * n)
        if k is not None:
            at(t0, k, 2)
        a = time.ticks_diff(time.ticks_us(), t0)
        mic.readinto(buf)
        b = time.ticks_diff(time.ticks_us(), t0)
        # the counting pattern: the left slot of frame f holds (2 f mod 2**24) << 8
        f = [(struct.unpack_from("<I", buf, 8 * i)[0] >> 9) for i in range(n)]
        breaks = sum(1 for i in range(1, n) if f[i] != f[i - 1] + 1)
        print("read", n, f[0], f[-1], breaks, a, b)
finally:
    mic.deinit()
