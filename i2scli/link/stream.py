"""One framed stream with the running agent: START and READY, credits, the host's watchdog,
and the SUMMARY that ends it (docs/protocol.md). The stream modes are thin layers over this."""

from __future__ import annotations

import time
from collections.abc import Callable

from i2scli import protocol as proto
from i2scli.link import halt, schema
from i2scli.link.errors import LinkError, board_error, frame_json
from i2scli.link.launch import Launcher
from i2scli.protocol import FrameType as T

DEFAULT_TIMEOUT_MS = 3000
# what a streaming agent sends: anything else does not count as hearing from it
_STREAM_TYPES = frozenset((T.DATA, T.CREDIT, T.SUMMARY, T.ERROR, T.PHASE, T.PROBE))


class Stream:
    """START sent and READY received: frames flow until SUMMARY (or an error)."""

    def __init__(self, launcher: Launcher, cfg: dict):
        """START, then READY (or the board's error)."""
        launcher.ready_for(cfg)  # running, with the agent's module for this mode
        self.launcher = launcher
        self.port = launcher.port
        hello = launcher.hello
        crc = bool(hello.get("crc")) and cfg.get("crc", True)
        cfg = {"timeout_ms": DEFAULT_TIMEOUT_MS, **cfg, "crc": crc}
        # keys with a leading _ are the host's own notes (why the ring has its size): not sent
        self.cfg = cfg = {k: v for k, v in cfg.items() if v is not None and not k.startswith("_")}
        self.enc = enc = proto.Encoder(crc=crc)
        self.dec = dec = launcher.hello_decoder or proto.Decoder(max_payload=4096)
        dec.max_payload = max(4096, cfg.get("payload", 0) + 1)  # + a coded payload's mode byte
        self.timeout_s = cfg["timeout_ms"] / 1000
        self.overhead = proto.HEADER_SIZE + (proto.CRC_SIZE if crc else 0)
        self._backlog: list = []
        self._tail: memoryview | None = None  # the rest of a frame longer than the credit
        self.long = False  # DATA frames longer than half the window: they go out in pieces
        self.coding = None  # a WireCoding when the agent codes this stream's DATA
        # bytes of one audio frame in the DATA the board sends (both buses share the format)
        self.frame_bytes = cfg.get("bits", 16) // 8 * (2 if cfg.get("format") == "stereo" else 1)
        self._silence_limit: float | None = None  # give up after this long without a frame
        self._heard = 0.0
        self._banner_seen = False
        start = enc.json(T.START, cfg)
        inbuf = hello.get("inbuf", 256)
        # HELLO implies inbuf bytes of credit. A larger START (duplex on an ESP32) goes in
        # half-buffer slices, paced for the UART's rate in use (115200 unless raised: 8N1
        # carries baud / 10 bytes a second), while the agent reads it.
        step = max(16, inbuf // 2)
        line = (launcher.baud or 115200) / 10
        for i in range(0, len(start), step):
            if i:
                time.sleep(step / line)
            self.port.write(start[i:i + step])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frames = dec.feed(self.port.read_some())
            for i, f in enumerate(frames):
                if f.type == T.READY:
                    dec.pending_garbage(clear=True)  # from here on, skipped bytes are this stream's
                    self._backlog = frames[i + 1:]  # the stream's first frames may ride along
                    self.ready = schema.check("READY", frame_json(f), self.port.name)
                    if self.ready.get("code") and not cfg.get("code"):
                        raise schema.BadField(f"the board at {self.port.name} codes a stream the host "
                                              f"did not ask to code (READY `code`)")
                    halt.keep()  # a signal from here on ends the stream tidily
                    self._watch_silence()
                    self.gate = proto.CreditGate()
                    self.gate.grant(self.ready["window"])
                    size = proto.frame_size(self.ready["payload"] + 1, crc)
                    self.long = size > self.ready["window"] // 2
                    # the agent says whether it codes this stream's DATA (it may not, e.g. no viper)
                    if self.ready.get("code"):
                        from i2scli.link.coding import WireCoding

                        self.coding = WireCoding(cfg.get("bits", 16), 2 if cfg.get("format") == "stereo" else 1)
                    return
                if f.type == T.ERROR:
                    launcher.finish()
                    raise board_error(f)
        raise LinkError(f"the agent on {self.port.name} did not get ready")

    def _watch_silence(self) -> None:
        """The host's own watchdog: during a stream the board sends DATA or CREDIT all the time,
        so a board silent for longer than the agent's timeout, plus what its buffers can still
        be playing out, is gone (reset, hung, link stalled): give up instead of waiting forever."""
        cfg, ready = self.cfg, self.ready
        byte_rate = cfg.get("rate", 8000) * max(1, ready.get("frame_bytes") or 1)
        drain = ((cfg.get("ibuf") or 0) + (ready.get("prefill") or 0)) / byte_rate
        self._silence_limit = cfg.get("timeout_ms", DEFAULT_TIMEOUT_MS) / 1000 + 1.0 + drain
        self._heard = time.monotonic()
        self._banner_seen = False

    def next_frames(self) -> list:
        """The frames that have arrived (waits at most the port's short read)."""
        if self._backlog:
            frames, self._backlog = self._backlog, []
            self._heard = time.monotonic()
            return frames
        dec = self.dec
        data = self.port.read_some()
        if b"MicroPython v" in data or b'Type "help()"' in data:
            self._banner_seen = True  # a start-up banner mid-stream: the board reset
        frames = dec.feed(data)
        if any(f.type in _STREAM_TYPES for f in frames):  # frames the board has no business sending do not count
            self._heard = time.monotonic()
        elif self._silence_limit is not None and time.monotonic() - self._heard > self._silence_limit:
            self._silence_limit = None
            seen = dec.pending_garbage()
            if self._banner_seen or b"MicroPython" in seen or b'Type "help()"' in seen:
                raise LinkError(f"the board at {self.port.name} reset during the stream (its start-up banner arrived)")
            raise LinkError(f"no word from the board at {self.port.name} for "
                            f"{time.monotonic() - self._heard:.1f} s (link stalled or board hung)")
        return frames

    def collect(self, frames, on_data: Callable[[bytes], None] | None = None) -> dict | None:
        """Credits into the gate, DATA to on_data; the SUMMARY when it came."""
        for f in frames:
            if f.type == T.CREDIT:
                self.credit(self.credit_of(f))
            elif f.type == T.DATA and on_data is not None:
                audio = self.audio_of(f)
                if audio is not None:
                    on_data(audio)
            elif f.type == T.SUMMARY:
                return self.summary_of(f)
            elif f.type == T.ERROR:
                self.launcher.finish()
                raise board_error(f)
        return None

    def credit_of(self, f: proto.Frame) -> int:
        """A CREDIT frame's byte count (a u32: never negative), or the board's fault."""
        try:
            return f.credit()
        except ValueError:
            raise schema.BadField(f"the board at {self.port.name} sent a CREDIT frame of "
                                  f"{len(f.payload)} bytes, not 4") from None

    def audio_of(self, f: proto.Frame) -> bytes | None:
        """A DATA frame's audio: whole audio frames as sent, or decoded (None: a damaged coded
        frame, counted). A raw payload that is not whole frames is the board's fault."""
        if self.coding is not None:
            return self.coding.decode(f.payload)
        if len(f.payload) % self.frame_bytes:
            raise schema.BadField(f"the board at {self.port.name} sent a DATA frame of {len(f.payload)} "
                                  f"bytes, not a whole number of {self.frame_bytes}-byte audio frames")
        return f.payload

    def summary_of(self, f: proto.Frame) -> dict:
        """A SUMMARY frame's fields, checked (schema.py)."""
        return schema.check("SUMMARY", frame_json(f), self.port.name,
                            schema.SUMMARY_REQUIRED.get(self.cfg.get("mode"), ()))

    def poll(self, on_data: Callable[[bytes], None] | None = None) -> dict | None:
        return self.collect(self.next_frames(), on_data)

    def credit(self, nbytes: int) -> None:
        """Credit from the board; the rest of a long frame goes out as far as it reaches."""
        self.gate.grant(nbytes)
        if self._tail is not None:
            self._pump()

    def _pump(self) -> None:
        tail = self._tail
        n = min(len(tail), self.gate.available)
        if n > 0:
            self.gate.spend(n)
            self.port.write(bytes(tail[:n]))
            self._tail = tail[n:] if n < len(tail) else None

    def room(self, nbytes: int) -> bool:
        """Whether a frame of `nbytes` (and whatever must fit behind it) may start now: no frame
        is still going out, and it fits the credit — or, on a stream of long frames, some credit
        is there and the rest follows as the board grants it (the board reads such a frame a
        piece at a time, granting after each: docs/protocol.md, credits). Check before encoding:
        a frame takes a sequence number."""
        if self._tail is not None:
            return False
        return self.gate.can_send(nbytes) or (self.long and self.gate.available > 0)

    def send(self, frame: bytes) -> None:
        """A frame `room` allowed: what does not fit the credit yet follows as credit comes."""
        if self.gate.can_send(len(frame)):
            self.gate.spend(len(frame))
            self.port.write(frame)
            return
        if not self.long or self._tail is not None:
            raise proto.CreditError(f"sending {len(frame)} bytes exceeds the credit of {self.gate.available} bytes")
        self._tail = memoryview(frame)
        self._pump()

    def control(self, ftype: T) -> bool:
        """An empty control frame if the credit allows it now."""
        if not self.room(self.enc.size(0)):  # check before encoding: a frame takes a seq number
            return False
        self.send(self.enc.frame(ftype))
        return True

    def await_summary(self, on_data=None, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            summary = self.poll(on_data)
            if summary is not None:
                return summary
        raise LinkError(f"the agent on {self.port.name} did not report the end of the stream")

    def summarise(self, summary: dict) -> dict:
        """The agent's SUMMARY with the host's link counters; the agent is back at its REPL."""
        dec = self.dec
        # bytes after the agent's last frame are the REPL's closing ones, not damage: as sent,
        # or garbled when they came at the REPL's baud rate before the host switched back
        tail_run = 1 if dec.in_garbage else 0
        summary["host_crc_errors"] = dec.crc_errors + (self.coding.errors if self.coding else 0)
        if self.coding is not None:
            summary["host_code"] = self.coding.summary()
        summary["host_resyncs"] = dec.resyncs - tail_run
        summary["host_seq_gaps"] = dec.seq_gaps
        self._silence_limit = None
        self.launcher.finish(dec.pending_garbage(clear=True))
        if summary.get("reason") == "timeout":
            # the agent's watchdog: it heard nothing from us for timeout_ms and stopped the stream
            raise LinkError(f"the board stopped the stream: nothing from the host reached it for "
                            f"{self.timeout_s:g} s (link stalled?)")
        return summary

