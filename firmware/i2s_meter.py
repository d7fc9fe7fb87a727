# i2s agent, meters and heap accounting: TX underruns and RX overruns from the agent's own
# clock, and the bytes allocated over a stream's steady state (SUMMARY's heap_alloc). Integer
# maths on clocks re-anchored every second: small ints on 32-bit ports, nothing allocated.
import sys
import time
import gc
import micropython
from micropython import const

# the agent's own: the largest small int a clock count may reach
_BIG = const(0x3FFFFFFF)
_HEAP_CAP = const(4096)  # bytes a mem_alloc window may see before it lets collection run (Heap)


class Meter:
    """TX on esp32 (ESP-IDF's DMA buffers; docs/sim.md has the sources): N buffers of 256
    frames played in a circle from init, each cleared as it ends. A writer that keeps ahead
    fills them in the DMA's order, so written frame k goes out at F0 + k, F0 being the first
    audio's frame: max(256·N, the buffer boundary after the first write; the first buffer is
    not free before its end). The agent keeps those books by its own clock (ticks_us from
    init): when the DMA has passed the frames written, it played zeros (`lost`, each run of
    them one underrun, `events`), and the next frames go out from the next buffer boundary
    once the buffer the writer holds is finished with zeros (`fill`): else the port puts the
    rest of it a circle later, or writes over it. Writes return only as buffers end, so the
    clock alone says nothing of the DMA's state. Exact while the board's I2S clock and
    ticks_us agree; 5 ms of tolerance. Integer maths on a clock re-anchored every second:
    small ints on 32-bit ports, nothing allocated."""

    def __init__(self, rate, circle, ring):
        self.rate = rate
        self.circle = circle  # frames of the N DMA buffers
        self.ring = ring
        self.t = 0  # anchor (ticks_us) and frames clocked at it
        self.f = 0
        self.p = -1  # the frame where the next frame written goes out (-1: none written yet)
        self.w = 0  # frames written
        self.o = 0  # frames into the DMA buffer the writer holds
        self.gap = 0  # zero frames that finish it, after an underrun
        self.spell = False
        self.events = 0
        self.lost = 0

    def opened(self):
        """Right after the bus was made: its DMA starts at the end of init."""
        self.t = time.ticks_us()
        self.f = 0

    def _frames(self, now):
        d = time.ticks_diff(now, self.t)
        while d >= 1000000:
            self.t = time.ticks_add(self.t, 1000000)
            self.f += self.rate
            d -= 1000000
        r = self.rate
        return self.f + ((d // 1000) * r + (d % 1000) * r // 1000) // 1000

    def tx(self, written):
        """Before a write; `written` frames so far."""
        if self.p < 0:
            b = (self._frames(time.ticks_us()) // 256 + 1) * 256  # the next buffer boundary
            self.p = b if b > self.circle else self.circle
        else:
            self.dry()

    def dry(self):
        """The DMA has passed the frames written: an underrun (the books then go on from the
        next buffer boundary)."""
        if self.p < 0:
            return False
        c = self._frames(time.ticks_us())
        if self.f >= 0x100000:  # keep the books small: whole circles off both
            k = self.f // self.circle * self.circle
            self.f -= k
            self.p -= k
            c -= k
        # 5 ms for the clocks' drift; none at a boundary the books were set to (an underrun)
        if c <= self.p + (0 if self.spell else self.rate // 200):
            self.spell = False
            return False
        if not self.spell:
            self.spell = True
            self.events += 1
        b = (c // 256 + 1) * 256
        self.lost += b - self.p
        self.p = b
        self.gap = (256 - self.o) % 256
        return True

    def fill(self):
        """Zero frames to write before the next audio: the rest of the buffer an underrun left
        the writer in the middle of."""
        g = self.gap
        if g:  # (asked before every write: the writer's place stands otherwise)
            self.gap = 0
            self.o = 0
        return g

    def put(self, written, flight=0):
        """After a write; `written` frames so far, this write's included."""
        self.p += written - self.w
        self.o = (self.o + written - self.w) % 256
        self.w = written

    def pad(self, frames):
        """Frames written that are not the stream's audio."""
        if self.p >= 0:
            self.p += frames
            self.o = (self.o + frames) % 256

    def push(self):
        """Silence that carries the last audio out: none (ESP-IDF's DMA plays a buffer however
        little of it was written, the rest cleared: auto_clear)."""
        return 0

    def left_ms(self):
        """How long until the last frame written has left the pins, at most: the writer fills
        a DMA buffer the DMA has just freed, which plays after the other buffers (the whole
        ring, `ring` frames), then itself."""
        return (self.ring * 1000 + self.rate - 1) // self.rate + 1


class DmaMeter:
    """TX on the ports whose DMA takes the ring in halves (rp2, stm32, mimxrt; docs/sim.md has
    the sources): at the end of each DMA half of 128 bytes of stereo frames the port refills
    it from the ring if the ring holds at least 128 bytes, else with zeros (`feed_dma`). The
    agent keeps the same books: frames clocked since init by its own clock (ticks_us; half
    boundaries every `hf` frames), bytes written, so it knows each half the DMA fed with zeros
    after the first audio: those frames were invented (`lost`), each run of them one underrun
    (`events`). Exact while the board's I2S clock and ticks_us agree; a clock off by N ppm puts
    a boundary N ppm of the elapsed time away, so a count may be one half (hf frames) off per
    underrun. A blocking write that had to wait for room (longer than a half) finds the ring
    full: the books are set to it, so drift does not add up. Non-blocking (irq) writes give no
    such sign: there the books drift by the clocks' difference over the stream (50 ppm is
    about 80 frames a minute at 48 kHz, a ring of 16 kB lasts 85 ms = 4000 frames). Integer maths on a clock re-anchored
    every second: small ints on 32-bit ports, nothing allocated."""

    def __init__(self, rate, fb, bits, ring):
        self.rate = rate
        self.fb = fb
        self.hf = 128 // (4 if bits == 16 else 8)  # frames a half (stereo in the DMA buffer)
        self.hb = self.hf * fb  # ring bytes a half takes (mono: half of 128)
        self.half_us = self.hf * 1000000 // rate
        self.cap = ring  # bytes the ring holds
        self.t = 0  # anchor (ticks_us) and frames clocked at it, less whole halves taken off
        self.f = 0
        self.b = 0  # half boundaries accounted since init (less the same)
        self.r = 0  # bytes in the ring
        self.w = 0  # frames written
        self.tw = 0  # when the write in progress began
        self.fed = False  # audio has reached the DMA
        self.spell = False
        self.events = 0
        self.lost = 0
        self.tail = 0  # bytes written since init, modulo 128: the DMA takes whole halves
        self.sync = 0  # frames written when the books were last set to a full ring

    def opened(self):
        """Right after the bus was made: its DMA starts at the end of init."""
        self.t = time.ticks_us()
        self.f = 0
        self.b = 0
        self.r = 0
        self.tail = 0

    def _frames(self, now):
        d = time.ticks_diff(now, self.t)
        while d >= 1000000:
            self.t = time.ticks_add(self.t, 1000000)
            self.f += self.rate
            d -= 1000000
        r = self.rate
        return self.f + ((d // 1000) * r + (d % 1000) * r // 1000) // 1000

    def _advance(self, now):
        """The half boundaries up to now: each takes a half of the ring, or invents zeros."""
        n = self._frames(now) // self.hf - self.b
        if n <= 0:
            return
        self.b += n
        if self.f >= 0x100000:  # keep the books small: whole halves off both
            k = self.f // self.hf
            self.f -= k * self.hf
            self.b -= k
        d = 0
        if self.r >= 128:
            d = (self.r - 128) // self.hb + 1
            if d > n:
                d = n
            self.r -= d * self.hb
            self.fed = True
            self.spell = False
        if d < n and self.fed:
            if not self.spell:
                self.spell = True
                self.events += 1
            self.lost += (n - d) * self.hf

    def tx(self, written):
        """Before a write; `written` frames so far."""
        self.tw = time.ticks_us()
        self._advance(self.tw)

    def put(self, written, flight=0):
        """After a write; `written` frames so far, this write's included (`flight`: bytes of
        it a non-blocking write may still hold outside the ring)."""
        now = time.ticks_us()
        self._advance(now)
        n = (written - self.w) * self.fb
        self.r += n
        self.tail = (self.tail + n) & 127
        self.w = written
        if self.r > self.cap + flight:
            self.r = self.cap + flight
        elif not flight and time.ticks_diff(now, self.tw) > self.half_us and self.r > self.cap >> 1:
            self.r = self.cap  # it waited for room: the ring is full
            self.sync = written

    def dry(self):
        """The DMA has run the ring dry since the audio began and it is still short."""
        self._advance(time.ticks_us())
        return self.spell and self.r < 128

    def fill(self):
        return 0

    def pad(self, frames):
        """Frames written that are not the stream's audio (a lead-in of silence)."""
        self.r += frames * self.fb
        self.tail = (self.tail + frames * self.fb) & 127
        if self.r > self.cap:
            self.r = self.cap

    def push(self):
        """Bytes of silence that carry the last audio out of the ring, exactly: the DMA takes
        a half (hb bytes) only while the ring holds 128 bytes (mono: 64 taken, 128 needed), so
        the ring is filled up to the end of the last half, and for mono one half beyond."""
        if not self.w:
            return 0
        return (-self.tail) % self.hb + 128 - self.hb

    def left_ms(self):
        """How long until the last byte in the ring has left the pins: the ring's halves go
        to the DMA one a boundary, and each plays two halves later (the other half plays
        first); one half more for the port's FIFO and the clocks, and where the books have
        run on the clock alone (irq writes) since they were last set, 1/4096 of those frames
        (244 ppm) for the board's I2S clock against ticks_us."""
        now = time.ticks_us()
        self._advance(now)
        hf = self.hf
        m = (self.r + self.hb - 1) // self.hb
        f = (self.b + m + 3) * hf - self._frames(now) + ((self.w - self.sync) >> 12)
        return (f * 1000 + self.rate - 1) // self.rate if f > 0 else 0


# _DMA_HALF (the ports that feed TX DMA halves from a ring) and _IDF_DMA (the frames of an
# ESP-IDF port's DMA buffer), by sys.platform, come from the host's board targets at upload.
def tx_meter(cfg, fb):
    """The TX meter for this port: the DMA's books where the port feeds halves from a ring,
    else (esp32: ESP-IDF's DMA descriptors) the clock against the frames written."""
    if _DMA_HALF.get(sys.platform):
        return DmaMeter(cfg["rate"], fb, cfg["bits"], cfg["ibuf"] - 1)
    n = _IDF_DMA.get(sys.platform, 256)
    ring = max(cfg["ibuf"] // (n * fb), 2) * n  # esp32: DMA buffers of 256 frames, at least 2
    return Meter(cfg["rate"], ring, max(ring, cfg["ibuf"] // fb))


# RX ring of each port in frames (docs/sim.md has the sources): the rp2, stm32 and mimxrt ring
# holds ibuf - 1 bytes of 8-byte frames whatever the format, and takes the DMA's 16-frame
# halves (128 bytes) only while it has room for a whole one; esp32 keeps ibuf // 2048 (at
# least 2) DMA buffers of 256 frames. Frames a port holds beyond that in flight (a DMA half; an
# esp32 DMA buffer) are what an overrun check must allow for.
def rx_ring_frames(ibuf):
    n = _IDF_DMA.get(sys.platform, 0)
    if n:
        return max(ibuf // (8 * n), 2) * n
    return (ibuf - 129) // 8 + 16 if ibuf > 128 else 0  # the most it holds: a half past the last room


class RxMeter:
    """RX overruns as they happen, in frames. The bus fills the port's ring at `rate` while the
    agent empties it, so frames clocked beyond those read and those the ring can hold were
    lost. Checked before each read: then the ring holds at most `ring` frames, so a loss of
    more than `tol` frames is seen, however many frames the read takes (checked after a
    read, up to a payload of loss hid behind the room the read had just made). The clock is
    the agent's own (ticks_us), kept honest after each read: the ring cannot hold less than
    nothing (the bus runs fast), and once a second the least it held is taken as the bus
    running slow (at most 0.5 %). Integer maths on a clock re-anchored every second: small
    ints on 32-bit ports, nothing allocated. `at` keeps where the first 8 losses fell, in
    frames of the stream, so the host can tell them from any other damage."""

    def __init__(self, rate, ring):
        self.rate = rate
        self.ring = ring
        n = _IDF_DMA.get(sys.platform, 0)  # an ESP-IDF DMA buffer, else a ring's 16-frame halves
        self.tol = (n or 16) + rate // 2000 + 2
        self.fly = 0 if n else 16  # a DMA half not yet in the ring
        self.t = 0  # anchor (ticks_us)
        self.e = 0  # frames the bus had put in the ring by the anchor, less those lost
        self.started = False
        self.over = False
        self.floor = _BIG
        self.events = 0
        self.lost = 0
        self.at = [0] * 8

    def _due(self, now):
        """Frames the bus has put in the ring by now, less those lost (expected reads)."""
        d = time.ticks_diff(now, self.t)
        while d >= 1000000:
            self.t = time.ticks_add(self.t, 1000000)
            self.e += self.rate
            d -= 1000000
            self._settle()
        r = self.rate
        return self.e + (d // 1000) * r // 1000 + (d % 1000) * r // 1000000

    def _settle(self):
        f = self.floor
        if f < _BIG:
            f -= self.fly
        if 0 < f < _BIG:
            m = self.rate // 200
            self.e -= f if f < m else m
        self.floor = _BIG

    def opened(self, t):
        """The bus's clock started at `t` (ticks_us, at the end of its init: the ports start the
        DMA there): the books start then, nothing read. Without it they start at the first read,
        as if the ring were empty then; a stream that reads as soon as it opens (record) finds
        it so, but one whose reads wait for the host (loop) may find frames gathered since, and
        a ring short by them hides a loss as large."""
        self.started = True
        self.t = t
        self.e = 0

    def before(self, read):
        """Before a read, `read` frames read so far: count what the ring could not hold."""
        now = time.ticks_us()
        if not self.started:
            self.started = True
            self.t = now
            self.e = read
            return
        b = self._due(now) - read - self.ring
        if b > self.tol:
            if not self.over:
                self.over = True
                if self.events < 8:
                    # a ring drops the newest frames, after those it holds; esp32's DMA queue
                    # its oldest buffers, right after the one the reader holds
                    self.at[self.events] = read + (0 if self.fly == 0 else self.ring)
                self.events += 1
            self.lost += b
            self.e -= b
        else:
            self.over = False

    def after(self, read):
        """After a read, `read` frames read so far."""
        b = self._due(time.ticks_us()) - read
        if b < 0:
            self.e -= b
            b = 0
        if b < self.floor:
            self.floor = b

    def where(self):
        return self.at[:self.events if self.events < 8 else 8]


class Heap:
    """Bytes allocated over the steady-state frames: start() opens the window, mark() after
    each steady frame records where it stands, stop() closes it at the last mark. Uses
    micropython.mem_total where the port has it, else gc.mem_alloc() with collection held off;
    then the window closes once _HEAP_CAP bytes are seen: on a 32-bit port a CRC above 2**30 is
    a big int, 32 bytes a frame, and held off for a whole stream the heap ran out (rp2, 6 s)."""

    def __init__(self):
        self.total = getattr(micropython, "mem_total", None)
        self.method = "mem_total" if self.total else "mem_alloc"
        if not self.total:
            self.total = gc.mem_alloc
        self.a = 0
        self.b = 0
        self.bytes = 0
        self.on = False

    def start(self):
        if self.method == "mem_alloc":
            gc.collect()
            gc.disable()
        self.a = self.total()
        self.b = self.a
        self.on = True

    def mark(self):
        self.b = self.total()
        if self.b - self.a > _HEAP_CAP and self.method == "mem_alloc":
            self.stop()

    def stop(self):
        if not self.on:
            return
        self.bytes = self.b - self.a
        if self.method == "mem_alloc":
            gc.enable()
        self.on = False
