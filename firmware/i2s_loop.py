# i2s agent, loop (START mode "loop", docs/protocol.md): TX and RX on two buses at once, for a
# loopback test, with the clock report that takes the board's buffering out of its latency.
import time

from i2s_meter import RxMeter, rx_ring_frames
from i2s_stream import _open_i2s, _pins, coded_buffers, decode_data, send_coded

# frame types (_DATA, _ABORT, ...), _HDR, _TIMEOUT: the host puts their consts here as it sends it


def _align(t0, h, r):
    """Wait until the TX clock started at ticks `t0` is an eighth into a DMA half of `h` frames
    (esp32: a DMA buffer) at `r` Hz (START's tx_half), so the boundary where the port takes the first write is
    known (docs/test.md): the clock started at most the init call's time before `t0` was read,
    which moves the true place later in the half, not past its end."""
    lo = h // 8
    while True:
        f = time.ticks_diff(time.ticks_us(), t0) * r // 1000000 % h
        if lo <= f < 2 * lo:
            return
        w = ((lo - f) % h) * 1000000 // r
        if w > 50:
            time.sleep_us(w - 20)


class Loop:
    """Full duplex on two buses (START mode "loop", docs/protocol.md): TX on cfg["tx"]'s I2S,
    RX on cfg["rx"]'s, at once. Each host DATA frame is written to TX, then as many bytes are
    read from RX and sent back, until cfg["frames"] RX frames or END. The clock report (sync)
    says where the first written frame went out on TX and where RX started, in TX frames, so
    the host can take the board's own buffering out of a loopback's latency."""

    def __init__(self, stream):
        self.s = stream
        cfg = stream.cfg
        self.want = cfg.get("frames", 0)
        self.tx = None
        self.rx = None
        self.t_tx = 0
        self.t_rx = 0
        self.sync = {}
        self.rx_frames = 0
        self.rx_meter = RxMeter(cfg["rate"], rx_ring_frames(cfg["ibuf"]))
        self.buf, self.view = stream.link.frame_buffer(stream.payload)
        if stream.coder is not None:  # coded: TX decodes into one buffer, RX codes out of another
            self.dst = bytearray(stream.payload)
            self.dview = memoryview(self.dst)
            coded_buffers(stream, stream.payload)
        self.counted = 0
        self.warm = stream.warmup()
        self.prefill = cfg["ibuf"] // 2

    def open(self):
        """Both buses once, so that a board without them says so before READY; RX then waits
        closed until the first TX write, so its ring cannot overflow while the host starts."""
        cfg = self.s.cfg
        t = time.ticks_us()
        self.tx = _open_i2s(cfg, "tx", _pins(cfg["tx"]))
        # the ports start the DMA at the end of init: the clock started within the call
        self.t_tx = time.ticks_us()
        self.s.meter.opened()
        self.sync["tx_init_us"] = time.ticks_diff(self.t_tx, t)
        self.s.audio = self.tx  # closed by main's way out, as the one-bus modes' audio
        self.s.mark("tx_init")
        self.rx_pins = _pins(cfg["rx"])
        self.rx = _open_i2s(cfg, "rx", self.rx_pins)
        self.rx.deinit()
        self.rx = None
        st = getattr(self.tx, "_sim_stats", None)
        if st is not None:  # the port says when its clock started: exact (the virtual board)
            self.t_tx = st()["t0"]
        self.sync["clock"] = "ticks" if st is None else "port"

    def open_rx(self):
        """RX from now on: frame 0 of the recording is the first one clocked after this."""
        t = time.ticks_us()
        self.rx = _open_i2s(self.s.cfg, "rx", self.rx_pins)
        self.t_rx = time.ticks_us()
        self.sync["rx_open_us"] = time.ticks_diff(self.t_rx, t)
        self.s.mark("rx_init")
        st = getattr(self.rx, "_sim_stats", None)
        if st is not None:
            self.t_rx = st()["t0"]
        self.rx_meter.opened(self.t_rx)  # the first read waits for the host's next DATA frame
        self.sync["rx_init_us"] = time.ticks_diff(self.t_rx, self.t_tx)

    def close(self):
        self.port_xruns()
        for a in (self.rx, self.tx):
            if a is not None:
                a.deinit()
        self.rx = self.tx = None
        self.s.audio = None
        self.s.mark("deinit")

    def port_xruns(self):
        """Where the port counts them itself (the virtual board): frames the buses lost."""
        for a, k, key in ((self.tx, "underrun_frames", "tx_underrun_frames"),
                          (self.rx, "overrun_frames", "rx_overrun_frames")):
            st = getattr(a, "_sim_stats", None)
            if st is not None:
                self.sync[key] = st()[k]

    def run(self):
        s = self.s
        s.mark("loop_start")
        s.last = time.ticks_ms()
        while self.step():
            pass
        s.heap.stop()
        s.heap_frames = s.heap_last - s.heap_first if s.heap.bytes or s.heap_last else 0
        s.mark("loop_end")

    # per-frame methods: few locals each (MicroPython heap-allocates big call frames)
    def step(self):
        """One host frame in (DATA to TX); after DATA, the same number of bytes out of RX."""
        link = self.s.link
        t = link.read_frame(self.s.timeout)
        link.grant()
        if t == _DATA:
            n = self.put(link.plen)
            if n <= 0:
                return True
            if self.rx is not None:
                return self.get(n)
            if self.s.frames * self.s.fb >= self.prefill:
                self.open_rx()  # TX holds half a ring: it cannot run dry while RX is read
            return True
        if t == _END or t == _ABORT or t == _TIMEOUT:
            self.s.reason = "end" if t == _END else "abort" if t == _ABORT else "timeout"
            return False
        return True  # KEEPALIVE and the like

    def put(self, n):
        s = self.s
        if s.coder is not None:
            n = decode_data(s, s.coder, s.link.pbuf, n, self.dst)
            if n <= 0:
                return 0  # damaged: counted, never played (and nothing read back for it)
            self.first_or_meter()
            self.tx.write(self.dview if n == s.payload else self.dview[:n])
        else:
            self.first_or_meter()
            self.tx.write(s.link.pfull if n == s.payload else memoryview(s.link.pbuf)[:n])
        if s.frames == 0:
            self.first_tx(n)
        s.frames += n // s.fb
        s.meter.put(s.frames)
        return n

    def first_or_meter(self):
        if self.s.frames == 0:
            if self.s.cfg.get("tx_half"):
                _align(self.t_tx, self.s.cfg["tx_half"], self.s.cfg["rate"])
            self.sync["tx_write_us"] = time.ticks_diff(time.ticks_us(), self.t_tx)
        self.s.meter.tx(self.s.frames)
        self.s.finish_buf(self.s.meter)  # (esp32, after an underrun)

    def first_tx(self, n):
        """Where the first written frame goes out, in TX frames since TX's clock started."""
        s = self.s
        s.mark("first_audio")
        st = getattr(self.tx, "_sim_stats", None)
        if st is not None:
            d = st()
            h = d.get("dma_half", 0)
            f = d.get("first_frame", -1)
            if h:  # taken into a DMA half already, or at the next half's end: plays a half later
                self.sync["tx_first_frame"] = f if f >= 0 else (d["frames"] // h + 2) * h
            elif f >= 0:  # esp32: the DMA buffer it went into, where that plays next
                self.sync["tx_first_frame"] = f
            else:  # clocked + still in the ring - just written = where it started
                self.sync["tx_first_frame"] = d["frames"] + d["ring_bytes"] // s.fb - n // s.fb

    def get(self, n):
        s = self.s
        if self.want and self.rx_frames + n // s.fb > self.want:
            n = (self.want - self.rx_frames) * s.fb
            s.heap.stop()
        part = self.view if n == s.payload else memoryview(self.view)[:n]
        self.rx_meter.before(self.rx_frames)
        self.rx.readinto(part)
        if self.rx_frames == 0:
            self.sync["rx_read_us"] = time.ticks_diff(time.ticks_us(), self.t_tx)
        if s.encoder is None:
            s.link.send_data(self.buf, part, n)
        else:
            send_coded(s, s.encoder, part, n)
        self.rx_frames += n // s.fb
        self.rx_meter.after(self.rx_frames)
        return self.counting()

    def counting(self):
        s = self.s
        s.heap.mark()
        s.heap_last = self.rx_frames
        self.counted += 1
        if self.counted == self.warm:
            s.heap.start()
            s.heap_first = self.rx_frames
        if self.want and self.rx_frames >= self.want:
            s.reason = "frames"
            return False
        return True

    def summary(self):
        s = self.s
        return {"rx_frames": self.rx_frames, "tx_frames": s.frames, "sync": self.sync,
                "underruns": s.meter.events, "overruns": self.rx_meter.events,
                "lost_frames": s.meter.lost + self.rx_meter.lost, "overrun_at": self.rx_meter.where()}
