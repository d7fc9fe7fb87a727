# A MicroPython script for any rp2 board (Pico pins: SCK GP16, WS GP17, SD GP18) that puts the
# port's TX DMA rules on the pins: a starved ring, writes of odd sizes (not whole frames, not
# whole DMA halves), an irq (non-blocking) write, a blocking write into a full ring. It prints
# one line per step, "step kind bytes t_before t_after t_done" (µs since the bus was made;
# t_done: when an irq write's callback was seen), then
# "end t_deinit": with the pins' capture that is all a test needs to check the frames against
# the port's rules (tests/e2e/test_sim_dma_rules.py). Run: mpremote connect PORT run dma_rules.py
import time

from machine import I2S, Pin

RATE = 4000  # 16-bit stereo: a DMA half of 128 bytes is 32 frames, 8 ms
HALF_US = 8000
IBUF = 1024


def pattern(n, start):
    """n bytes of a count that never makes a zero byte."""
    b = bytearray(n)
    for i in range(n):
        b[i] = 1 + (start + i) % 251
    return b


def at_half(t0, k):
    """Sleep until the middle of DMA half k (frame 32·k + 16), away from its boundaries."""
    d = time.ticks_diff(time.ticks_add(t0, k * HALF_US + HALF_US // 2), time.ticks_us())
    if d > 0:
        time.sleep_us(d)


done = [False]


def on_done(_):
    done[0] = True


audio = I2S(0, sck=Pin(16), ws=Pin(17), sd=Pin(18), mode=I2S.TX, bits=16, format=I2S.STEREO,
            rate=RATE, ibuf=IBUF)
t0 = time.ticks_us()
sent = 0
try:
    # (half to start at, io, bytes): each step's bytes continue one count
    for half, io, n in ((10, "blocking", 500),  # 3 halves out, 116 bytes left: then zeros
                        (20, "blocking", 6),  # 122 bytes: still less than a half
                        (22, "blocking", 130),  # 252: one half out, 124 left, 2 bytes off the frames
                        (30, "irq", 700),  # copied 512 (then 188) at the interrupts
                        (45, "blocking", 1100)):  # more than the ring: waits for room
        buf = pattern(n, sent)
        at_half(t0, half)
        if io == "irq":
            audio.irq(on_done)
        a = time.ticks_diff(time.ticks_us(), t0)
        audio.write(buf)
        b = time.ticks_diff(time.ticks_us(), t0)
        c = b
        if io == "irq":
            while not done[0]:  # the callback: the interrupt that copied the last piece
                time.sleep_us(100)
            c = time.ticks_diff(time.ticks_us(), t0)
            audio.irq(None)
        print("step", io, n, a, b, c)
        sent += n
    at_half(t0, 90)  # long after the ring ran dry
    print("end", time.ticks_diff(time.ticks_us(), t0))
finally:
    audio.deinit()
