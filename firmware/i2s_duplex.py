# i2s agent, duplex (START mode "duplex", docs/half-duplex.md): half-duplex on one SD line,
# record then play (or the other way round) with the switch done on the board.
import time

from i2s_meter import RxMeter, rx_ring_frames, tx_meter
from i2s_stream import _open_i2s, _pins, coded_buffers, decode_data, send_coded

# frame types (_DATA, _ABORT, ...), _HDR, _TIMEOUT: the host puts their consts here as it sends it


def dx_prefill(cfg, payload):
    """Bytes of TX audio the board parks during RX: whole payload-sized slots."""
    return max(1, cfg.get("prefill", cfg["ibuf"]) // payload) * payload


class Switch:
    """The switch between RX and TX on one SD line, as release, wait, drive. To TX: stop RX,
    deinit, park the SD pads as inputs, DIR to the codec-listens level, wait the switch delay,
    start TX, lead-in silence, audio. To RX: play out silence, deinit TX, park the SD pads,
    wait, DIR to the codec-drives level, start RX, throw away the first frames. Each step is
    timestamped (ticks_us)."""

    def __init__(self, stream):
        from machine import Pin

        self.s = stream
        cfg = stream.cfg
        self.cfg = cfg
        self.Pin = Pin
        self.rx_level = cfg.get("dir_rx_level", 0)
        self.dir = Pin(cfg["dir"], Pin.OUT, value=1 - self.rx_level) if cfg.get("dir") is not None else None
        self.pads = [cfg["rx"]["sd"]]
        if cfg["tx"]["sd"] != cfg["rx"]["sd"]:
            self.pads.append(cfg["tx"]["sd"])  # two pads tied together: the idle one is an input
        self.delay = cfg.get("switch_delay_us", 1000)
        self.tx_pins = _pins(cfg["tx"])
        self.rx_pins = _pins(cfg["rx"])
        self.switching = False
        self.gaps = []

    def _park(self):
        for p in self.pads:
            self.Pin(p, self.Pin.IN)

    def _wait(self):
        if self.delay:
            time.sleep_us(self.delay)

    def _release(self, first, tx):
        """The bus let go: the I2S of the direction it leaves (`tx`: the TX one, played out)
        closed unless this is the first phase, its pads inputs."""
        if self.switching:
            raise RuntimeError("switch re-entered")
        self.switching = True
        s = self.s
        if not first:
            if tx:
                s._play_out(self.tx_meter)
            s.audio.deinit()
            s.audio = None
            s.mark("tx_deinit" if tx else "rx_deinit")
        self._park()
        s.mark("sd_released")
        return s

    def to_rx(self, first):
        s = self._release(first, True)
        self._wait()
        s.mark("delay_done")
        if self.dir is not None:
            self.dir.value(self.rx_level)
            s.mark("dir_rx")
        s.audio = _open_i2s(self.cfg, "rx", self.rx_pins)
        s.mark("rx_init")
        self._gap()
        view = memoryview(self.slots[0][0])[:s.payload]  # whole frames (a slot holds a coded byte more)
        discard = self.cfg.get("discard_frames", 0) * s.fb
        while discard > 0:  # word-clock alignment and whatever the line held: exactly
            n = min(discard, len(view))
            s.audio.readinto(view if n == len(view) else memoryview(view)[:n])
            discard -= n
        s.mark("rx_kept")
        self.switching = False
        s.link.send_json(_PHASE, {"phase": "rx"})

    def to_tx(self, first):
        s = self._release(first, False)
        if self.dir is not None:
            self.dir.value(1 - self.rx_level)
            s.mark("dir_tx")
        self._wait()
        s.mark("delay_done")
        s.audio = _open_i2s(self.cfg, "tx", self.tx_pins)
        s.mark("tx_init")
        self.tx_meter.opened()  # the DMA runs from here
        self._gap()
        self.switching = False
        s.link.send_json(_PHASE, {"phase": "tx"})

    def _gap(self):
        t = self.s.timeline
        if len(t) >= 2:
            stop = [m[1] for m in t if m[0] in ("rx_deinit", "tx_deinit")]
            if stop:
                self.gaps.append(time.ticks_diff(t[-1][1], stop[-1]))


class Duplex(Switch):
    """Half-duplex on one SD line (docs/half-duplex.md): record, switch, play (or the other
    way round) in one START..SUMMARY, the switch done here with no host round trip."""

    def __init__(self, stream):
        Switch.__init__(self, stream)
        cfg = self.cfg
        P = stream.payload
        self.slots = []
        n = dx_prefill(cfg, P) // P
        C = 1 if stream.coder is not None else 0  # a coded payload's mode byte
        while len(self.slots) < n:
            b = bytearray(P + C + 4)
            self.slots.append((b, memoryview(b)[:P + C]))
        if C:  # coded: play decodes into one buffer, record codes out of another
            self.dst = bytearray(P)
            self.dview = memoryview(self.dst)
            coded_buffers(stream, P)
        self.filled = []  # lengths of the slots holding pre-sent TX audio, in order
        self.rx_frames = 0
        # the bus against the clock, as plain tx/rx streams do: an overrun is a gap in the recording
        self.rx_meter = RxMeter(cfg["rate"], rx_ring_frames(cfg["ibuf"]))
        self.tx_meter = tx_meter(cfg, stream.fb)

    def record(self):
        """RX until rx_frames (or the host's SWITCH); meanwhile park pre-sent TX audio."""
        s, link = self.s, self.s.link
        P, fb = s.payload, s.fb
        want = self.cfg.get("rx_frames", 0)
        buf, view = link.frame_buffer(P)
        last = time.ticks_ms()
        while True:
            n = P if not want else min(P, (want - self.rx_frames) * fb)
            if n <= 0:
                break
            part = view if n == P else memoryview(view)[:n]
            self.rx_meter.before(self.rx_frames)
            s.audio.readinto(part)
            self.rx_meter.after(self.rx_frames + n // fb)
            if s.encoder is None:
                link.send_data(buf, part, n)
            else:
                send_coded(s, s.encoder, part, n)
            self.rx_frames += n // fb
            if link.wait(0):
                t = self._take(0)
                if t == _SWITCH or t == _END or t == _ABORT:
                    if t == _ABORT:
                        s.reason = "abort"
                    break
                last = time.ticks_ms()
            elif time.ticks_diff(time.ticks_ms(), last) > s.timeout:
                s.reason = "timeout"
                break
        s.mark("rx_stop")

    def _take(self, ms):
        """Read one host frame; DATA goes into the next free slot (the host never pre-sends
        more than READY's prefill, so a slot is always there)."""
        link = self.s.link
        if len(self.filled) >= len(self.slots):
            t = link.read_frame(ms)
            link.grant()
            if t == _DATA:
                raise RuntimeError("host sent more audio than the prefill holds")
            return t
        b, v = self.slots[len(self.filled)]
        keep_b, keep_v = link.pbuf, link.pfull
        link.pbuf, link.pfull = b, v
        t = link.read_frame(ms)
        link.pbuf, link.pfull = keep_b, keep_v
        link.grant()
        if t == _DATA:
            self.filled.append(link.plen)
        return t

    def _lead_in(self):
        """Silence before the audio (the codec's settling), written just before it."""
        s = self.s
        lead = self.cfg.get("lead_in_frames", 0) * s.fb
        silence = bytearray(min(max(lead, 4), 1024))
        self.tx_meter.tx(0)
        while lead > 0:
            n = min(lead, len(silence))
            s.audio.write(silence if n == len(silence) else memoryview(silence)[:n])
            self.tx_meter.pad(n // s.fb)
            lead -= n
        s.mark("lead_in_done")

    def play(self):
        """The parked audio first (topped up to half a ring), then the host's frames until END
        (or SWITCH)."""
        s, link, fb = self.s, self.s.link, self.s.fb
        coder = s.coder
        first = True
        stop = _top_up(self)
        if stop == _ABORT or stop == _TIMEOUT:
            s.reason = "abort" if stop == _ABORT else "timeout"
            return stop
        self._lead_in()
        for i in range(len(self.filled)):
            n = self.filled[i]
            b, v = self.slots[i]
            if coder is not None:
                b, v = self.dst, self.dview
                n = decode_data(s, coder, self.slots[i][0], n, b)
                if n <= 0:
                    continue  # damaged: counted, never played
            self.tx_meter.tx(s.frames)
            s.finish_buf(self.tx_meter)  # (esp32, after an underrun)
            s.audio.write(v if n == len(v) else memoryview(b)[:n])
            if first:
                s.mark("first_audio")
                first = False
            s.frames += n // fb
            self.tx_meter.put(s.frames)
        self.filled = []
        if stop is not None:
            s.reason = "end"
            self.tx_meter.tx(s.frames)
            return stop
        while True:
            t = link.read_frame(s.timeout)
            link.grant()
            if t == _DATA:
                n = link.plen
                if coder is not None:
                    n = decode_data(s, coder, link.pbuf, n, self.dst)
                    if n <= 0:
                        continue  # damaged: counted, never played
                    self.tx_meter.tx(s.frames)
                    s.finish_buf(self.tx_meter)  # (esp32, after an underrun)
                    s.audio.write(self.dview if n == s.payload else self.dview[:n])
                else:
                    self.tx_meter.tx(s.frames)
                    s.finish_buf(self.tx_meter)  # (esp32, after an underrun)
                    s.audio.write(link.pfull if n == s.payload else memoryview(link.pbuf)[:n])
                if first:
                    s.mark("first_audio")
                    first = False
                s.frames += n // fb
                self.tx_meter.put(s.frames)
            elif t in (_END, _SWITCH, _ABORT, _TIMEOUT):
                s.reason = {_END: "end", _SWITCH: "end", _ABORT: "abort", _TIMEOUT: "timeout"}[t]
                self.tx_meter.tx(s.frames)  # the DMA's halves up to the end of the audio
                return t

    def run(self):
        s = self.s
        if self.cfg.get("order", "record-play") == "record-play":
            self.to_rx(True)
            self.record()
            if s.reason in ("abort", "timeout"):
                return
            self.to_tx(False)
            self.play()
            s._play_out(self.tx_meter)
        else:
            self.to_tx(True)
            self.play()
            if s.reason in ("abort", "timeout"):
                return
            s.reason = "end"
            self.to_rx(False)
            self.record()
        s.audio.deinit()
        s.audio = None
        s.mark("deinit")

    def summary(self):
        return {"rx_frames": self.rx_frames, "tx_frames": self.s.frames, "clock_gaps_us": self.gaps,
                "switch_delay_us": self.delay, "overruns": self.rx_meter.events,
                "underruns": self.tx_meter.events, "lost_frames": self.rx_meter.lost + self.tx_meter.lost,
                "overrun_at": self.rx_meter.where()}


def _top_up(dx):
    """Hold back audio until half the ring's worth is parked (as Prime does for a plain play:
    the DMA must not find the ring short right after the first write), the slots are full or
    the host stops: that frame's type, or None."""
    P = dx.s.payload
    want = (dx.cfg["ibuf"] // 2 + P - 1) // P
    while len(dx.filled) < want and len(dx.filled) < len(dx.slots):
        t = dx._take(dx.s.timeout)
        if t in (_END, _SWITCH, _ABORT, _TIMEOUT):
            return t
    return None
