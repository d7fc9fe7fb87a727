# The virtual board's DMA halves on the ports that keep a ring (rp2, stm32, mimxrt; MicroPython
# code, runs inside the unix port): TX halves in closed form, however many a tick spans; half
# by half where a non-blocking (irq) write is pending: its write() only files the buffer; the
# DMA interrupt at the end of each half copies SIZEOF_NON_BLOCKING_COPY_IN_BYTES (4 halves:
# 512 bytes) of it into the ring when the ring has room for that much (or for the rest), and
# only then refills the half it just played (copy_appbuf_to_ringbuf_non_blocking, then feed_dma, in rp2's
# dma_irq_handler, stm32's HAL_I2S_Tx(Half)CpltCallback, mimxrt's edma_i2s_callback).
# docs/sim.md cites the lines.
import _chan

NB_COPY = 512  # SIZEOF_NON_BLOCKING_COPY_IN_BYTES = SIZEOF_HALF_DMA_BUFFER_IN_BYTES * 4


def out_dma(o, n):
    """n frames clocked out of the two DMA halves (rp2, stm32, mimxrt), in constant time
    however many halves the tick spans (the board's CPU does none of this: its DMA does).
    At the end of each half the port refills it (feed_dma): the ring's next half if the ring
    holds at least 128 bytes (SIZEOF_HALF_DMA_BUFFER_IN_BYTES, also for mono), else zeros;
    it plays after the other half. (_dd, _dz: data then zero frames to report.)"""
    o._dd = 0
    o._dz = 0
    k = o._hf - (o._clk - n) % o._hf  # frames left of the half playing at the start
    if n < k:
        play(o, o._h0, n)
    else:
        play(o, o._h0, k)
        _halves(o, n - k)
    if o._dd or o._dz:
        _chan.clock(o._sid, o._dd, o._dz)


def _halves(o, n):
    """n frames past the first half boundary of a tick: the next half, then the halves fed
    at each boundary (data while the ring lasts, then zeros)."""
    m = n // o._hf  # whole halves after the first boundary: m + 1 boundaries, m + 1 feeds
    d = feeds(o, m + 1, o._clk - n)  # of them data
    play(o, o._h1, n if n < o._hf else o._hf)
    n -= o._hf
    if n > 0:
        play(o, 1, n if n < d * o._hf else d * o._hf)
        n -= d * o._hf
        if n > 0:
            play(o, o._hz, n)
    # now playing: half m of (next, feed 1, feed 2, ...); the next after it: half m + 1
    o._h0 = o._h1 if m == 0 else 1 if m <= d else o._hz
    o._h1 = 1 if m + 1 <= d else o._hz


def feeds(o, b, at):
    """b feeds at the half boundaries from frame `at` on: how many take a half of the ring
    (it holds 128 bytes), the rest zeros (_hz: -1 an underrun once audio has played, else 0)."""
    d = 0
    if o._ring >= 128:
        d = (o._ring - 128) // o._hb + 1
        if d > b:
            d = b
        o._ring -= d * o._hb
        if o._first < 0:
            o._first = at + o._hf
    o._hz = -1 if o._first >= 0 else 0
    return d


def play(o, kind, k):
    """k frames of a half: audio (kind 1) or zeros (an underrun where kind is -1)."""
    if k <= 0:
        return
    if kind > 0:
        o._under = False
        if o._dz:
            _chan.clock(o._sid, o._dd, o._dz)
            o._dd = 0
            o._dz = 0
        o._dd += k
    else:
        if kind < 0:
            o._underrun(k)
        o._dz += k


def tx_steps(o, n):
    """n frames clocked out of the DMA halves of I2S object `o` while a non-blocking write is
    pending: half by half, since each boundary may move audio into the ring."""
    o._dd = 0
    o._dz = 0
    hf = o._hf
    k = hf - (o._clk - n) % hf  # frames left of the half playing at the start
    while n >= k:
        play(o, o._h0, k)
        n -= k
        at = o._clk - n  # this boundary's frame
        if o._nb:
            _copy(o)
        d = feeds(o, 1, at)
        o._h0 = o._h1
        o._h1 = 1 if d else o._hz
        k = hf
    play(o, o._h0, n)
    if o._dd or o._dz:
        _chan.clock(o._sid, o._dd, o._dz)


def _copy(o):
    """At a half boundary: the next piece of the pending write into the ring, if it fits."""
    rem = o._end - o._off
    k = NB_COPY if rem > NB_COPY else rem
    if k > 0 and o._cap - o._ring >= k:
        if o._dd or o._dz:  # the frames before this boundary first
            _chan.clock(o._sid, o._dd, o._dz)
            o._dd = 0
            o._dz = 0
        o._accept(o._nb_buf, k)


def nb_wait_frames(o):
    """Frames until the pending write can move: the next half boundary."""
    return o._hf - o._clk % o._hf


# RX on the same ports: the DMA fills 128-byte halves of 8-byte frames (32-bit stereo whatever
# the format: 16 frames); at the end of each, its interrupt pushes the half into the ring if the
# ring has room for all 128 bytes, else drops the whole half (empty_dma). The ring holds
# ibuf - 1 bytes. A blocking readinto in progress takes bytes as they come (_grace).
def rx_halves(o, n):
    """n frames clocked on RX: each half boundary crossed fills or drops a half. (Each function
    here keeps its locals and stack within 11 words: no call frame on the heap.)"""
    b = o._clk // o._rxh - (o._clk - n) // o._rxh
    if b > 0:
        d = _room(o, b)
        if d:
            _fill(o, d * o._rxh)
        if d < b:
            o._overrun((b - d) * o._rxh)


def _room(o, b):
    """How many of b halves the ring takes: while it holds at most (ibuf - 1 - 128) // 8 frames
    (those a read in progress takes do not count)."""
    rf = (o._ring - o._grace) // o._fb  # (below 0: the read takes more than the ring holds)
    top = (o._ibuf - 129) // 8
    if rf > top:
        return 0
    d = (top - rf) // o._rxh + 1
    return d if d < b else b


def _fill(o, f):
    if o._pdrop:  # fill and drop records keep their order
        _chan.rx(o._sid, o._pfill, o._pdrop, None, 0)
        o._pfill = 0
        o._pdrop = 0
    o._ring += f * o._fb
    o._pfill += f


def rx_wait_frames(o, need):
    """Frames to clock before the ring holds `need` bytes, at a half boundary."""
    h = o._rxh
    f = (need - o._ring + o._fb - 1) // o._fb
    return (o._clk // h + (f + h - 1) // h) * h - o._clk
