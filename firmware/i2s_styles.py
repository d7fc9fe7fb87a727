# i2s agent, the other transfer styles (START "io": "irq" or "asyncio"): non-blocking
# I2S with a callback and two buffers, or asyncio streams on the I2S object.
import time

from i2s_stream import Prime, Stream, coded_buffers, decode_data, send_coded

# frame types (_DATA, _ABORT, ...), _HDR, _TIMEOUT: the host puts their consts here as it sends it


class Styles(Stream):
    """TX and RX in the irq and asyncio styles, coded on the wire as the blocking streams are
    (no heap window)."""

    def _on_io(self, _):
        self.io_done = True

    def finish_buf(self, m):
        """irq: the zeros are a write of their own, done before the audio's starts."""
        z = Stream.finish_buf(self, m)
        if z is not None:
            _io_wait(self)  # (z stays referenced while the port writes it)

    def tx_irq(self):
        """Non-blocking writes: the DMA takes one buffer while the next frame is read into
        the other; the callback says when the ring has taken it. Primed as play is."""
        link, audio, fb, P = self.link, self.audio, self.fb, self.payload
        coder = self.coder
        meter = self.meter
        if coder is not None:  # decoded after the ring took the last write: one buffer does
            src = bytearray(P)
            full = memoryview(src)
        prime = keep = Prime(self)
        self.held = prime.buf  # the DMA reads it after write() returns
        self.io_done = False  # set by the callback of the write in progress
        self.cb = self._on_io  # bound once: no allocation per frame
        audio.irq(self.cb)
        busy = False
        self.mark("tx_start")
        while True:
            t = link.read_frame(self.timeout)
            link.grant()
            if t != _DATA:
                self.reason = "end" if t == _END else "abort" if t == _ABORT else "timeout"
                if t in (_END, _ABORT, _TIMEOUT):
                    break
                continue
            n = link.plen
            if busy:
                _io_wait(self)
                busy = False
            if coder is None:
                view = link.pfull if n == P else memoryview(link.pbuf)[:n]
            else:
                n = decode_data(self, coder, link.pbuf, n, src)
                if n <= 0:
                    continue  # damaged: counted, never played
                view = full if n == P else full[:n]
            prime = prime or self.dry(keep)
            if prime is not None:
                if self.hold(prime, view, n):
                    prime = None
                    busy = True
                continue
            meter.tx(self.frames)
            audio.write(view)
            if coder is None:
                link.swap()  # the DMA reads this payload while the next one is read
            busy = True
            self.frames += n // fb
            meter.put(self.frames, n)
        if prime is not None and self.reason == "end":
            busy = self.write_prime(prime)  # a short stream's all
        if busy:
            _io_wait(self)
        meter.tx(self.frames)
        audio.irq(None)
        self._play_out()
        self.held = None
        self.mark("tx_end")

    def rx_irq(self):
        """Non-blocking reads into two buffers: one fills while the other is sent."""
        link, audio, fb, P = self.link, self.audio, self.fb, self.payload
        want = self.cfg.get("frames", 0)
        bufs = [link.frame_buffer(P), link.frame_buffer(P)]
        coder = self.coder
        if coder is not None:
            coded_buffers(self, P)
        self.io_done = False
        self.cb = self._on_io
        audio.irq(self.cb)
        k = 0
        audio.readinto(bufs[0][1])
        self.mark("rx_start")
        self.last = time.ticks_ms()
        meter = self.meter
        while True:
            _io_wait(self)
            meter.after(self.frames + P // fb)
            buf, view = bufs[k]
            k ^= 1
            meter.before(self.frames + P // fb)
            audio.readinto(bufs[k][1])  # the next one fills while this one goes out
            n = P if not want else min(P, (want - self.frames) * fb)
            part = view if n == P else memoryview(view)[:n]
            if _sent_last(self, coder, buf, part, n, want):
                break
        audio.irq(None)
        self.mark("rx_end")

    async def tx_async(self):
        """asyncio.StreamWriter on the I2S object (frames read from the host as usual), primed."""
        import asyncio

        link, fb, P = self.link, self.fb, self.payload
        coder = self.coder
        meter = self.meter
        if coder is not None:
            src = bytearray(P)
            full = memoryview(src)
        prime = keep = Prime(self)
        out = asyncio.StreamWriter(self.audio, {})
        self.mark("tx_start")
        while True:
            t = link.read_frame(self.timeout)
            link.grant()
            if t == _DATA:
                n = link.plen
                if coder is None:
                    view = link.pfull if n == P else memoryview(link.pbuf)[:n]
                else:
                    n = decode_data(self, coder, link.pbuf, n, src)
                    if n <= 0:
                        continue  # damaged: counted, never played
                    view = full if n == P else full[:n]
                prime = prime or self.dry(keep)
                if prime is not None:
                    if self.hold(prime, view, n, False):
                        await _prime_async(self, out, prime)
                        prime = None
                    continue
                meter.tx(self.frames)
                out.write(view)
                await out.drain()
                self.frames += n // fb
                meter.put(self.frames)
            elif t in (_END, _ABORT, _TIMEOUT):
                self.reason = "end" if t == _END else "abort" if t == _ABORT else "timeout"
                break
        if prime is not None and self.reason == "end" and prime.n:
            await _prime_async(self, out, prime)
        meter.tx(self.frames)
        self._play_out()
        self.mark("tx_end")

    async def rx_async(self):
        """asyncio.StreamReader on the I2S object."""
        import asyncio

        link, fb, P = self.link, self.fb, self.payload
        want = self.cfg.get("frames", 0)
        inp = asyncio.StreamReader(self.audio)
        buf, view = link.frame_buffer(P)
        coder = self.coder
        if coder is not None:
            coded_buffers(self, P)
        self.mark("rx_start")
        self.last = time.ticks_ms()
        while True:
            n = P if not want else min(P, (want - self.frames) * fb)
            part = view if n == P else memoryview(view)[:n]
            got = 0
            while got < n:
                self.meter.before(self.frames + got // fb)
                got += await inp.readinto(part if not got else memoryview(part)[got:])
            self.meter.after(self.frames + n // fb)
            if _sent_last(self, coder, buf, part, n, want):
                break
        self.mark("rx_end")


async def _prime_async(s, out, prime):
    """The held-back audio (Prime) into the ring through the StreamWriter."""
    s.meter.tx(0)
    g = s.meter.fill() * s.fb  # esp32, after an underrun: the rest of the writer's DMA buffer
    if g:
        out.write(bytearray(g))
        await out.drain()
    out.write(prime.audio())
    await out.drain()
    s.mark("first_audio")
    s.meter.put(s.frames)


def _sent_last(s, coder, buf, part, n, want):
    """Send one recorded payload (`n` bytes of `part`, coded if there is a coder): True when it
    was the last (all `want` frames sent, or the host stopped the stream)."""
    if coder is None:
        s.link.send_data(buf, part, n)
    else:
        send_coded(s, coder, part, n)
    s.frames += n // s.fb
    if want and s.frames >= want:
        s.reason = "frames"
        return True
    return not s.host_poll()


def _io_wait(s):
    """Until the write or read in progress is done (its callback)."""
    while not s.io_done:
        time.sleep_us(50)  # the callback runs from the scheduler between bytecodes
    s.io_done = False
