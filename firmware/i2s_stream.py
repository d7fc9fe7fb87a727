# i2s agent, one stream: Stream is one START..SUMMARY exchange (its counters, timeline, the
# summary, the host's frames between RX chunks, the link probe); the modes subclass it
# (i2s_play, i2s_record, i2s_styles) or drive it (i2s_loop, i2s_duplex). Also here: opening
# machine.I2S, and finding the wire coder (firmware/wirecode.py) a coded stream needs.
import time

from i2s_meter import Heap, RxMeter, rx_ring_frames, tx_meter

# frame types (_DATA, _ABORT, ...), _HDR, _TIMEOUT: the host puts their consts here as it sends it


def _main_globals():
    try:
        import __main__  # the REPL's: where the host ran the coder for an installed agent

        return __main__.__dict__
    except Exception:
        return {}


_CODER_BITS = {"Decoder": 1, "Encoder": 2}  # protocol.CODER_PARTS


def _coder(name, load=True):
    """A wire coder class (firmware/wirecode.py, viper: Decoder for TX, Encoder for RX): the one
    the host ran in the REPL, or the installed module's, imported only for a stream that codes
    (native code takes RAM). With load=False: whether it is there at all."""
    for g in (globals(), _main_globals()):
        if name in g:
            return g[name]
    try:
        import os

        os.stat("/i2s_wirecode.mpy")
    except OSError:
        return None
    if not load:
        return True
    try:
        import i2s_wirecode

        return getattr(i2s_wirecode, name)
    except Exception:  # a .mpy for another firmware: raw frames
        return None


def _codec():
    """HELLO's `codec`: 1 = a decoder is there, 2 = an encoder, 3 = both."""
    return sum(bit for name, bit in _CODER_BITS.items() if _coder(name, False))


def _pin(p):
    from machine import Pin

    return Pin(p)


def _open_i2s(cfg, mode, pins=None):
    from machine import I2S

    pins = pins or cfg
    kw = {"sck": _as_pin(pins["sck"]), "ws": _as_pin(pins["ws"]), "sd": _as_pin(pins["sd"]),
          "mode": I2S.TX if mode == "tx" else I2S.RX, "bits": cfg["bits"],
          "format": I2S.STEREO if cfg["format"] == "stereo" else I2S.MONO,
          "rate": cfg["rate"], "ibuf": cfg["ibuf"]}
    if pins.get("mck") is not None:
        kw["mck"] = _as_pin(pins["mck"])
    return I2S(pins["id"], **kw)


def _as_pin(p):
    return p if hasattr(p, "value") else _pin(p)


def _pins(pins):
    """Pin objects made ahead of a switch, so the switch itself does only what it must."""
    out = dict(pins)
    for k in ("sck", "ws", "sd", "mck"):
        if out.get(k) is not None:
            out[k] = _pin(out[k])
    return out


class Probing:
    """The link probe (START mode "probe"): a base of Stream, apart so that each class
    uploads as one piece a small heap can parse."""

    def probe(self):
        """One way (probe_up bytes in, then probe_down out), or with probe_both both at once:
        each PROBE frame read is answered by one as long, until END (the loop's load)."""
        link = self.link
        both = self.cfg.get("probe_both", 0)
        up = self.cfg.get("probe_up", 0)
        buf, view = link.frame_buffer(self.payload)
        got = 0
        t0 = None
        t1 = 0
        half = up >> 1
        half_bytes = 0  # the bytes and time at the first frame past half way: the host takes
        half_us = 0  # the faster half, so one stall of the host or the bus is not the figure
        while both or got < up:
            t = link.read_frame(self.timeout)
            link.grant()
            if t == _TIMEOUT:
                self.reason = "timeout"
                return {}
            if t == _END and both:
                break
            if t == _PROBE:
                if t0 is None:
                    t0 = time.ticks_us()
                t1 = time.ticks_us()
                got += link.plen
                if half and not half_bytes and got >= half:
                    half_bytes = got
                    half_us = time.ticks_diff(t1, t0)
                if both:
                    self._probe_frame(buf, view, link.plen)
        up_us = time.ticks_diff(t1, t0) if t0 is not None else 0
        down = got if both else self.cfg.get("probe_down", 0)
        sent = got if both else 0
        while sent < down:
            n = min(self.payload, down - sent)
            self._probe_frame(buf, view, n)
            sent += n
        return {"up_bytes": got, "up_us": up_us, "down_bytes": sent, "half_bytes": half_bytes, "half_us": half_us}

    def _probe_frame(self, buf, view, n):
        """A PROBE frame of n filler bytes, built in place (a slice only for a short last one)."""
        link = self.link
        link._head(buf, _PROBE, n)
        if link.crc:
            link.seal(buf, n, view if n == len(view) else memoryview(view)[:n])
            link.out.write(buf, 0, _HDR + n + 4)
        else:
            link.out.write(buf, 0, _HDR + n)


class Stream(Probing):
    """One START..SUMMARY exchange."""

    def __init__(self, link, cfg):
        self.link = link
        self.cfg = cfg
        self.fb = cfg["bits"] // 8 * (2 if cfg["format"] == "stereo" else 1)
        self.payload = cfg["payload"]
        self.timeout = cfg.get("timeout_ms", 3000)
        self.frames = 0
        self.reason = "end"
        self.heap = Heap()
        if cfg["mode"] == "rx":
            self.meter = RxMeter(cfg["rate"], rx_ring_frames(cfg["ibuf"]))
        else:
            self.meter = tx_meter(cfg, self.fb)
        self.timeline = []
        self.audio = None
        self.t_start = time.ticks_us()
        self.heap_first = 0
        self.heap_last = 0
        self.last = 0
        self.heap_frames = 0
        self.port = None  # the port's own xrun counts, where it has them
        # wire coding (START "code": 1): coded DATA frames carry no link CRC, the coder's own
        # checksum over the decoded audio guards them; raw ones keep the CRC
        self.coder = None
        self.code_us = 0
        self.coded = 0
        self.plain = 0
        self.code_errors = 0
        self.encoder = None  # duplex, loop: the RX side's coder (coder is then the TX side's)
        mode = cfg["mode"]
        if cfg.get("code") and mode in ("tx", "rx", "duplex", "loop"):
            ch = 2 if cfg["format"] == "stereo" else 1
            dec = _coder("Decoder") if mode != "rx" else None
            enc = _coder("Encoder") if mode != "tx" else None
            both = mode == "duplex" or mode == "loop"
            if both and dec and enc:
                self.coder = dec(cfg["bits"], ch)
                self.encoder = enc(cfg["bits"], ch)
            elif not both and (dec or enc):
                self.coder = (dec or enc)(cfg["bits"], ch)

    def mark(self, step):
        self.timeline.append([step, time.ticks_us()])

    def summary(self, extra=None):
        link = self.link
        s = {"reason": self.reason, "frames": self.frames, "bytes": self.frames * self.fb,
             "underruns": self.meter.events if self.cfg["mode"] == "tx" else 0,
             "overruns": self.meter.events if self.cfg["mode"] == "rx" else 0,
             "lost_frames": self.meter.lost, "crc_errors": link.crc_errors,
             "resyncs": link.resyncs, "seq_gaps": link.seq_gaps, "heap_alloc": self.heap.bytes,
             "heap_frames": self.heap_frames, "heap_method": self.heap.method,
             "timeline": self.timeline, "elapsed_us": time.ticks_diff(time.ticks_us(), self.t_start)}
        if self.cfg["mode"] == "rx":
            s["overrun_at"] = self.meter.where()
        if self.port is not None:
            s["port_xruns"] = self.port
        if self.coder is not None:
            s["code"] = {"frames_coded": self.coded, "frames_raw": self.plain, "us": self.code_us,
                         "errors": self.code_errors}
        if extra:
            s.update(extra)
        return s

    def port_xruns(self):
        """Where the port counts xruns itself (the virtual board), its counts go beside the
        agent's own estimate: the host takes the larger, so nothing the port saw is missed."""
        st = getattr(self.audio, "_sim_stats", None)
        if st is not None:
            d = st()
            self.port = {k: d[k] for k in ("underruns", "underrun_frames", "overruns", "overrun_frames")}

    def host_poll(self):
        """Between RX chunks: take one host frame if there is one (END, ABORT, KEEPALIVE), and
        watch for a silent host. False when the stream must stop. Allocation-free."""
        link = self.link
        if link.wait(0):
            t = link.read_frame(0)
            link.grant()
            if t == _END or t == _ABORT:
                self.reason = "end" if t == _END else "abort"
                return False
            self.last = time.ticks_ms()
        elif time.ticks_diff(time.ticks_ms(), self.last) > self.timeout:
            self.reason = "timeout"
            return False
        return True

    def warmup(self):
        """DATA frames before the heap window opens: steady state starts once the DMA ring
        has filled (TX) or been drained (RX) twice, after every first-use allocation."""
        return 8 + 2 * self.cfg["ibuf"] // max(self.payload, 1)

    def hold(self, prime, view, n, write=True):
        """A payload into the prime; True when it is full (and written, if `write`)."""
        self.frames += n // self.fb
        if prime.add(view, n):
            if write:
                self.write_prime(prime)
            return True
        return False

    def dry(self, keep):
        """The prime again (`keep`, emptied) once the DMA has run the ring dry: after a gap the
        ring starts as full as at the start, so one gap is not followed by more."""
        if self.meter.dry():
            keep.n = 0
            self.heap.stop()  # the prime copies with slices: the window ends here
            return keep
        return None

    def write_prime(self, prime):
        """The held-back audio into the ring at once; False when there is none."""
        if not prime.n:
            return False
        self.meter.tx(0)
        self.finish_buf(self.meter)
        self.audio.write(prime.audio())
        self.mark("first_audio")
        self.meter.put(self.frames, prime.n if self.cfg.get("io") == "irq" else 0)
        return True

    def finish_buf(self, m):
        """esp32, after an underrun: zeros that finish the DMA buffer the writer was left in, so
        the audio goes on in order from the next boundary (Meter). Returns what it wrote (an irq
        write must be done before the next one starts)."""
        g = m.fill() * self.fb
        if not g:
            return None
        z = bytearray(g)  # only after an underrun
        self.audio.write(z)
        return z

    def _play_out(self, meter=None):
        """At END, before deinit (which discards the ring): the audio still in the ring and
        the DMA played onto the pins. No port's I2S says when that is done, so: exactly the
        silence that lets the DMA take the last audio (its halves are taken whole), then the
        time the meter's books say the ring and the DMA still need. Meanwhile the ring is kept
        in silence (what the pins carry anyway), so the DMA never finds it dry: a port that
        counts underruns counts none."""
        if self.reason != "end":
            return
        m = meter or self.meter
        self.mark("drain")
        m.tx(self.frames)
        z = bytearray(128)
        n = m.push()  # < 128
        if n:
            self.audio.write(memoryview(z)[:n])
            m.pad(n // self.fb)
        ms = m.left_ms()
        end = time.ticks_add(time.ticks_ms(), ms)
        left = (ms * self.cfg["rate"] // 1000) * self.fb + 256
        while left > 0 and time.ticks_diff(end, time.ticks_ms()) > 0:
            self.audio.write(z)
            left -= 128
        d = time.ticks_diff(end, time.ticks_ms())
        if d > 0:
            time.sleep_ms(d)

    # -- probe: measure the link ------------------------------------------------------------------


class Prime:
    """The audio a TX stream holds back before its first write. A port's DMA runs from init:
    rp2, stm32 and mimxrt refill each 128-byte DMA half from the ring only when it holds a
    whole half, else send a half of zeros (`feed_dma`), and ESP-IDF's DMA plays a cleared
    buffer when the writer is late. A first write of one payload, with the next one still on
    the link, would be played out and followed by zeros in the middle of the audio. So the
    stream keeps its first payloads here until half the ring's worth (whole payloads) is in
    hand, or the audio ends, and writes them at once: the ring then starts half full and
    fills from the link, which is faster than the bus for every stream that fits."""

    def __init__(self, s):
        P = s.payload
        k = (s.cfg["ibuf"] // 2 + P - 1) // P
        self.buf = bytearray((k if k > 1 else 1) * P)
        self.n = 0
        self.P = P

    def add(self, view, n):
        """Keep n bytes of view; True when no further payload fits: time to write."""
        self.buf[self.n:self.n + n] = view if n == len(view) else memoryview(view)[:n]
        self.n += n
        return self.n + self.P > len(self.buf)

    def audio(self):
        return memoryview(self.buf)[:self.n]


# -- wire coding, shared by the blocking streams (i2s_play, i2s_record) and the irq/asyncio styles

# Each of these keeps its locals and value stack within 11 words: past that MicroPython puts a
# call's frame on the heap (py/objfun.c, VM_MAX_STATE_ON_STACK; ports without pystack), which
# on the audio path is an allocation per frame. So: few locals, calls split off.
def decode_data(s, coder, src, n, dst):
    """One coded DATA payload (src[:n]) into dst: its length, or 0 when damaged (counted as a
    CRC error is: lost audio, never played)."""
    t0 = time.ticks_us()
    n = coder.decode(src, n, dst)
    _took(s, t0)
    return _decoded(s, n, src[0])


def _took(s, t0):
    s.code_us += time.ticks_diff(time.ticks_us(), t0)


def _decoded(s, got, mode):
    if got < 0:
        s.code_errors += 1
        s.link.crc_errors += 1
        return 0
    if mode:
        s.coded += 1
    else:
        s.plain += 1
    return got


def coded_buffers(s, P):
    """The buffer a coded DATA frame of up to P audio bytes is built in (send_coded)."""
    s.kb = bytearray(_HDR + P + 1 + 4)
    s.kv = memoryview(s.kb)[_HDR:]
    s.kr = memoryview(s.kb)[_HDR:_HDR + P + 1]  # a raw-escaped full frame, CRC'd


def send_coded(s, coder, view, n):
    """n bytes of audio as one coded DATA frame (raw-escaped, with CRC, when coding does not pay)."""
    t0 = time.ticks_us()
    n = coder.encode(view, n, s.kv)
    _took(s, t0)
    _send_coded(s, n)


def _send_coded(s, m):
    if s.kb[_HDR]:
        s.coded += 1
        s.link.send_plain(s.kb, m)
    else:
        s.plain += 1
        s.link.send_data(s.kb, s.kr if m == len(s.kr) else memoryview(s.kb)[_HDR:_HDR + m], m)
