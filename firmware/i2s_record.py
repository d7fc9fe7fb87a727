# i2s agent, record (START mode "rx", io "blocking"): I2S RX into DATA frames, coded on the
# way out when the stream is coded (the wire coder's Encoder). Nothing allocated per frame.
import time

from i2s_stream import Stream, coded_buffers, send_coded

# frame types (_DATA, _ABORT, ...), _HDR, _TIMEOUT: the host puts their consts here as it sends it


class Record(Stream):
    """RX: the bus read a payload at a time, each sent as one DATA frame, until the frame
    count or the host's END."""

    def rx(self):
        link = self.link
        audio = self.audio
        fb = self.fb
        P = self.payload
        meter = self.meter
        heap = self.heap
        want = self.cfg.get("frames", 0)
        buf, view = link.frame_buffer(P)
        if self.coder is not None:  # the coded frame is built in a second buffer
            coded_buffers(self, P)
        discard = self.cfg.get("discard_frames", 0) * fb
        self.mark("rx_start")
        while discard > 0:  # word-clock alignment and stale DMA data: exactly
            n = min(discard, P)
            audio.readinto(view if n == P else memoryview(view)[:n])
            discard -= n
        self.mark("rx_kept")
        warm = self.warmup()
        counted = 0
        self.last = time.ticks_ms()
        P_frames = P // fb
        while True:
            if want and self.frames + P_frames > want:
                n = (want - self.frames) * fb
                if n <= 0:
                    self.reason = "frames"
                    break
                heap.stop()
                part = memoryview(buf)[_HDR:_HDR + n]
                meter.before(self.frames)
                audio.readinto(part)
                if self.coder is None:
                    link.send_data(buf, part, n)
                else:
                    send_coded(self, self.coder, part, n)
                self.frames += n // fb
                self.reason = "frames"
                break
            meter.before(self.frames)
            audio.readinto(view)
            meter.after(self.frames + P_frames)
            if self.coder is None:
                link.send_data(buf, view, P)
            else:
                send_coded(self, self.coder, view, P)
            self.frames += P_frames
            heap.mark()
            self.heap_last = self.frames
            counted += 1
            if counted == warm:
                heap.start()
                self.heap_first = self.frames
            if not self.host_poll():
                break
        heap.stop()
        self.heap_frames = self.heap_last - self.heap_first if heap.bytes or self.heap_last else 0
        self.mark("rx_end")
