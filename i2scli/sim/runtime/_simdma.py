# The virtual board's DMA rules beyond the TX halves _simi2s keeps in closed form (MicroPython
# code, runs inside the unix port): a non-blocking (irq) write on the ports that keep a ring
# (rp2, stm32, mimxrt). Their write() only files the buffer; the DMA interrupt at the end of
# each half copies SIZEOF_NON_BLOCKING_COPY_IN_BYTES (4 halves: 512 bytes) of it into the
# ring when the ring has room for that much (or for the rest), and only then refills the half
# it just played (copy_appbuf_to_ringbuf_non_blocking, then feed_dma, in rp2's
# dma_irq_handler, stm32's HAL_I2S_Tx(Half)CpltCallback, mimxrt's edma_i2s_callback).
# docs/sim.md cites the lines.
import _chan

NB_COPY = 512  # SIZEOF_NON_BLOCKING_COPY_IN_BYTES = SIZEOF_HALF_DMA_BUFFER_IN_BYTES * 4


def tx_steps(o, n):
    """n frames clocked out of the DMA halves of I2S object `o` while a non-blocking write is
    pending: half by half, since each boundary may move audio into the ring."""
    o._dd = 0
    o._dz = 0
    hf = o._hf
    k = hf - (o._clk - n) % hf  # frames left of the half playing at the start
    while n >= k:
        o._play(o._h0, k)
        n -= k
        at = o._clk - n  # this boundary's frame
        if o._nb:
            _copy(o)
        d = o._feeds(1, at)
        o._h0 = o._h1
        o._h1 = 1 if d else o._hz
        k = hf
    o._play(o._h0, n)
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
