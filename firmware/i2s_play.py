# i2s agent, play (START mode "tx", io "blocking"): host DATA frames into I2S TX, decoded
# first when the stream is coded (the wire coder's Decoder). Nothing allocated per frame.
from i2s_stream import Prime, Stream, decode_data

# frame types (_DATA, _ABORT, ...), _HDR, _TIMEOUT: the host puts their consts here as it sends it


class Play(Stream):
    """TX: each DATA frame written to the bus as it arrives; at END, the ring played out."""

    def tx(self):
        link = self.link
        audio = self.audio
        shift = self.cfg.get("shift", 0)
        bits = self.cfg["bits"]
        fb = self.fb
        meter = self.meter
        heap = self.heap
        P = self.payload
        coder = self.coder
        if coder is None:
            src = link.pbuf
            full = link.pfull
        else:  # coded frames are decoded into a buffer of their own
            src = bytearray(P)
            full = memoryview(src)
        warm = self.warmup()
        prime = keep = Prime(self)
        counted = 0
        self.mark("tx_start")
        while True:
            t = link.read_frame(self.timeout)
            link.grant()
            if t == _DATA:
                n = link.plen
                if coder is not None:
                    n = decode_data(self, coder, link.pbuf, n, src)
                    if n <= 0:
                        continue  # damaged: counted, never played
                if prime is None:
                    prime = self.dry(keep)
                if prime is not None:  # held back until the ring can start well fed
                    view = full if n == P else memoryview(src)[:n]
                    if shift:
                        audio.shift(buf=view, bits=bits, shift=shift)
                    if self.hold(prime, view, n):
                        prime = None
                elif n == P:
                    if shift:
                        audio.shift(buf=full, bits=bits, shift=shift)
                    meter.tx(self.frames)
                    audio.write(full)
                    self.frames += n // fb
                    meter.put(self.frames)
                    heap.mark()
                    self.heap_last = self.frames
                else:
                    heap.stop()
                    view = memoryview(src)[:n]
                    if shift:
                        audio.shift(buf=view, bits=bits, shift=shift)
                    meter.tx(self.frames)
                    audio.write(view)
                    self.frames += n // fb
                    meter.put(self.frames)
                counted += 1
                if counted == warm:
                    heap.start()
                    self.heap_first = self.frames
            elif t == _END:
                self.reason = "end"
                break
            elif t == _ABORT:
                self.reason = "abort"
                break
            elif t == _TIMEOUT:
                self.reason = "timeout"
                break
            elif t == _KEEPALIVE:
                pass
        heap.stop()
        if prime is not None and self.reason == "end":
            self.write_prime(prime)  # all of a short stream
        meter.tx(self.frames)  # the DMA's halves up to END (a gap before the last bytes counts)
        self.heap_frames = self.heap_last - self.heap_first if heap.bytes or self.heap_last else 0
        self._play_out()
        self.mark("tx_end")
