# The esp32 port's DMA rules for the virtual board's I2S (MicroPython code, runs inside the
# unix port). MicroPython's ports/esp32/machine_i2s.c hands ESP-IDF (components/esp_driver_i2s/
# i2s_common.c) N = max(ibuf // (256 * DMA frame bytes), 2) zeroed buffers of 256 frames,
# linked in a circle that the DMA plays (TX) or fills (RX) from init on. At each buffer's end
# its interrupt queues it in a queue of N - 1, dropping the oldest entry when the queue is
# full; TX first clears the buffer (auto_clear). write/readinto work on the buffer they hold
# from its rw_pos, then take the oldest queued one. docs/sim.md cites the lines.
#
# The queue is always the q buffers that ended last, so a count says it all; the buffer at its
# head is the oldest. TX keeps the bytes in the model (records W, D: _chan.py); the board keeps
# per buffer where they are: [0, lo) (written from rw_pos 0) and [s, e) (a write that went on
# at the rw_pos of a buffer played since). RX tells the model each buffer's fate when it leaves
# the queue's head: read (fill) or dropped (drop), in the order they were clocked.
# Functions keep locals and stack within 11 words (no call frame on the heap); the object's
# scratch attributes (_dd, _dz, _px, _pa, _pb) serve as registers.
import _chan

F = 256  # DMA_BUF_LEN_IN_I2S_FRAMES (frames a DMA buffer)
wait_ring = None  # _simnb.wait_ring, set by _simi2s (a blocking call's wait for its DMA)
now = None  # the board's clock, set by _simi2s


def setup(o, ibuf, tx):
    """At init: the DMA frame is the user's on TX, 8 bytes (32-bit stereo) on RX."""
    n = ibuf // (F * (o._fb if tx else 8))
    o._en = n if n > 2 else 2
    o._bb = F * o._fb  # bytes of user frames a buffer holds
    o._cap = o._en * o._bb
    o._q = 0
    o._cur = -1
    o._rw = 0
    o._full = False
    if tx:
        o._lo = [0] * o._en
        o._s = [0] * o._en
        o._e = [0] * o._en


def _head(o):
    """The oldest queued buffer (the queue ends with the last buffer that ended)."""
    return (o._clk // F - o._q) % o._en


# -- TX --------------------------------------------------------------------------------------
def _size(o, x):
    """Bytes of buffer x that hold written data."""
    lo = o._lo[x]
    s = o._s[x]
    e = o._e[x]
    if s >= e:
        return lo
    if s <= lo:
        return e if e > lo else lo
    return lo + e - s


def tx_tick(o, n):
    """n frames clocked: the DMA plays its buffers in circle order, each cleared and queued at
    its end. What holds no data is zeros: an underrun once audio has played."""
    o._dd = o._clk - n  # the frame being played
    o._dz = 0
    while o._dd < o._clk:
        if not o._ring and not _task(o):  # nothing written waits anywhere: zeros to the end
            _zeros(o, o._clk - o._dd)
            _ended(o, o._clk // F - o._dd // F)
            break
        _pass(o)
        if o._dd % F == 0 and _task(o):
            _at_end(o)
    if o._dz:
        _chan.clock(o._sid, 0, o._dz)
        o._dz = 0


def _task(o):
    """A non-blocking (irq) write is in flight: the port's task writes it with portMAX_DELAY
    (esp:262-277), taking each buffer as it ends, while the main code may be elsewhere."""
    return o._nb and o._nb_buf is not None and o._off < o._end


def _at_end(o):
    """The task at the buffer end the pass reached: it writes as at that frame, not at the
    end of the tick (which would put its frames a circle late)."""
    c = o._clk
    o._clk = o._dd
    fill(o, o._nb_buf)
    o._clk = c


def _pass(o):
    """Play the buffer x playing from frame _dd to its end or the tick's: its data are frames
    [0, lo) and [s, e), zeros around them."""
    x = (o._dd // F) % o._en
    o._px = x
    o._pa = o._dd % F
    o._pb = F if o._clk - o._dd >= F - o._pa else o._pa + o._clk - o._dd
    lo = (o._lo[x] + o._fb - 1) // o._fb
    s = F
    e = F
    if o._s[x] < o._e[x]:
        s = o._s[x] // o._fb
        e = (o._e[x] + o._fb - 1) // o._fb
        if s <= lo:  # one range
            if e > lo:
                lo = e
            s = F
            e = F
    _seg(o, lo, 1)
    _seg(o, s, 0)
    _seg(o, e, 1)
    _seg(o, F, 0)
    o._dd += o._pb - o._dd % F
    if o._pb == F:  # its end: cleared (auto_clear), queued
        o._ring -= _size(o, x)
        o._lo[x] = 0
        o._s[x] = 0
        o._e[x] = 0
        _ended(o, 1)


def _seg(o, u, d):
    """The pass goes on to frame u of its buffer: data (d) or zeros."""
    if u > o._pb:
        u = o._pb
    if u > o._pa:
        if d:
            if o._dz:
                _chan.clock(o._sid, 0, o._dz)
                o._dz = 0
            _chan.dma_play(o._sid, o._px * o._bb + o._pa * o._fb, u - o._pa)
            o._under = False
        else:
            _zeros(o, u - o._pa)
        o._pa = u


def _zeros(o, k):
    if k > 0:
        if 0 <= o._first <= o._dd:  # (the first audio starts a buffer)
            o._underrun(k)
        o._dz += k


def _ended(o, k):
    """k buffers ended: each queued (the queue keeps the last N - 1); a write may go on."""
    if k > 0:
        o._q += k
        if o._q >= o._en:
            o._q = o._en - 1
        o._full = False


def fill(o, buf):
    """Bytes of buf[_off:_end] into the buffer held, then the oldest queued ones: False when
    none is left to take (a blocking write waits for the next buffer's end)."""
    while o._off < o._end:
        if o._cur < 0 or o._rw == o._bb:
            if not o._q:
                return False
            o._cur = _head(o)
            o._q -= 1
            o._rw = 0
        k = o._bb - o._rw
        if k > o._end - o._off:
            k = o._end - o._off
        _put(o, buf, k)
    return True


def _put(o, buf, k):
    """k bytes at rw_pos of the buffer held. Those behind the DMA in the buffer it is playing
    never play (the buffer is cleared at its end)."""
    x = o._cur
    if o._first < 0:
        o._first = _plays_at(o, x, o._rw // o._fb)
    r = o._rw  # where what plays starts
    if (o._clk // F) % o._en == x and r < (o._clk % F) * o._fb:
        r = (o._clk % F) * o._fb
        if r > o._rw + k:
            r = o._rw + k
    if r < o._rw + k:
        o._pa = x * o._bb + r
        o._pb = o._off + r - o._rw
        _send(o, buf, o._rw + k - r)
    o._ring -= _size(o, x)
    _mark(o, x, k)
    o._ring += _size(o, x)
    o._rw += k
    o._off += k
    o._started = True


def _send(o, buf, n):
    _chan.dma_put(o._sid, o._pa, buf, o._pb, n)


def _mark(o, x, k):
    """Bytes rw_pos..rw_pos+k of buffer x hold data now."""
    r = o._rw
    if r <= o._lo[x]:
        if r + k > o._lo[x]:
            o._lo[x] = r + k
    elif o._s[x] >= o._e[x]:
        o._s[x] = r
        o._e[x] = r + k
    else:  # (two ranges are all the rw_pos rules make; more would be merged)
        if r < o._s[x]:
            o._s[x] = r
        if r + k > o._e[x]:
            o._e[x] = r + k


def _plays_at(o, x, f):
    """The frame (since init) at which frame f of buffer x next goes out."""
    p = o._clk // F
    d = (x - p) % o._en
    if d == 0 and f < o._clk % F:
        d = o._en
    return (p + d) * F + f


def wait_frames(o):
    """Frames to the next buffer's end."""
    return F - o._clk % F


def write_blocking(o, buf):
    """i2s_channel_write with portMAX_DELAY: returns when the last byte is in a DMA buffer."""
    n = o._end - o._off
    t = now()
    while True:
        o._tick(t)
        if fill(o, buf):
            return n
        t = o._wake_at(wait_frames(o))
        wait_ring(t)


def write_now(o, buf):
    """asyncio: what fits now (i2s_channel_write with timeout 0)."""
    o._tick(now())
    a = o._off
    if not fill(o, buf):
        o._full = True  # DMA_MEMORY_FULL until a buffer ends
    return o._off - a


# -- RX --------------------------------------------------------------------------------------
def rx_tick(o, n):
    """n frames clocked on RX: each buffer ending is queued; a read in progress (_grace) takes
    it at once; a full queue drops its oldest buffer, 256 frames."""
    k = o._clk // F - (o._clk - n) // F
    if k <= 0:
        return
    o._full = False  # DMA_MEMORY_NOT_EMPTY (on_recv)
    while k and (o._grace > o._ring or o._q < o._en - 1):
        o._q += 1
        gather(o)
        if o._q >= o._en:  # the oldest is dropped
            o._q -= 1
            o._overrun(F)
        k -= 1
    if k:  # the queue is full and nobody reads: each end drops the oldest
        o._overrun(k * F)


def gather(o):
    """A read in progress takes queued buffers while it needs more than it holds."""
    while o._grace > o._ring and o._q:
        take_head(o)


def take_head(o):
    """readinto takes the oldest queued buffer: its frames enter the model's ring."""
    if o._pdrop:  # fill and drop records keep their order
        _chan.rx(o._sid, o._pfill, o._pdrop, None, 0)
        o._pfill = 0
        o._pdrop = 0
    o._q -= 1
    o._ring += o._bb
    o._pfill += F


def rx_avail(o):
    """Bytes a read could take now: the rest of the buffer held and the queued ones."""
    return o._ring + o._q * o._bb


def rx_wait_frames(o, need):
    """Frames to clock before `need` bytes can be read: at a buffer's end."""
    m = need - rx_avail(o)
    if m <= 0:
        return 0
    return (o._clk // F + (m + o._bb - 1) // o._bb) * F - o._clk


def read_now(o, n):
    """asyncio: take queued buffers for up to n bytes (i2s_channel_read with timeout 0); the
    bytes that can be read."""
    o._tick(now())
    while o._ring < n and o._q:
        take_head(o)
    if o._ring < n:
        o._full = True  # DMA_MEMORY_EMPTY until a buffer ends
        return o._ring
    return n


def rx_deinit(o):
    """The queued buffers and the one being filled never reach the ring: the frames of the
    queued ones (discarded, as what the ring holds)."""
    k = o._q * F
    o._pdrop += k + o._clk % F
    o._q = 0
    return k
