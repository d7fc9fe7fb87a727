# The virtual board's RX frames lost on purpose (MicroPython code, runs inside the unix port):
# sim --loopback drop=FRAME:N[,drop_every=] takes frames out of an RX session as an RX DMA
# overflow would, so a test can show the host finds the gap.
import _chan

lost = None  # (RX bus id, FRAME, N, EVERY), set by _simi2s.configure


def arm(o, i2s_id, rate):
    """A new RX session of I2S object `o` on bus i2s_id loses frames if it is the bus named."""
    if i2s_id != lost[0]:
        return
    o._lost_at = lost[1]
    o._lost_n = lost[2]
    e = lost[3]
    if e:  # ["smp", N] or ["s", num, den]: frames at this rate, halves up
        p = e[1] if e[0] == "smp" else (2 * e[1] * rate + e[2]) // (2 * e[2])
        o._lost_every = p if p > lost[2] else lost[2] + 1


def rx(o, n):
    """n frames clocked on RX while frames _lost_at.._lost_at+_lost_n-1 are to
    be lost (sim --loopback drop=; again every _lost_every frames): they never
    enter the ring, as in an RX DMA overflow. Each loss counts as one overrun."""
    a = o._clk - n  # first frame of this tick
    while n > 0 and o._lost_n and a + n > o._lost_at:
        if a < o._lost_at:
            o._rx_fill(o._lost_at - a)
            n -= o._lost_at - a
            a = o._lost_at
        k = o._lost_at + o._lost_n - a  # frames of the loss still to come
        if k > n:
            k = n
        if k > 0:
            if a == o._lost_at:
                o._n_over += 1
            o._n_over_f += k
            o._pdrop += k
            n -= k
            a += k
        if n > 0:  # past the loss: fill and drop records keep their order
            if o._lost_every:
                o._lost_at += o._lost_every
            else:
                o._lost_n = 0
            if o._pdrop:
                _chan.rx(o._sid, o._pfill, o._pdrop, None, 0)
                o._pfill = 0
                o._pdrop = 0
    if n > 0:
        o._rx_fill(n)
