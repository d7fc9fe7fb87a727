"""A hostile board: a pseudo-terminal that speaks the raw REPL and the frame protocol well
enough for `i2s` to run against it (HELLO, START/READY, credits, DATA, SUMMARY, the raw REPL's
closing bytes), and lies in the ways a broken or malicious board could (tests/e2e/test_hostile.py).

    board = HostileBoard(ready={"payload": "512"})   # a READY whose payload is a string
    i2s("record", "-p", board.path, ...)

Lies, each a keyword:
- `hello`, `ready`, `summary`, `probe`: fields put over the honest ones (DROP removes one);
- `data_bytes`: the DATA payload length in a recording (not a whole number of frames...);
- `talk`: bytes printed forever from the start, as a program that turned Ctrl-C off
  (`micropython.kbd_intr(-1)`) and prints in a loop: no raw REPL, ever;
- `mute_repl`: never answers Ctrl-A (the raw REPL cannot be entered);
- `no_summary`: a stream that never ends (DATA or credits stop, no SUMMARY).
"""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time

from conftest import LockedSender, TcpServer, raw_pty

from i2scli import protocol as proto
from i2scli.protocol import FrameType as T

DROP = object()
BANNER = b"raw REPL; CTRL-B to exit\r\n>"
HELLO = {"proto": proto.PROTO_VERSION, "agent": "hostile", "source": "installed", "platform": "rp2",
         "machine": "Raspberry Pi Pico with RP2040", "micropython": "1.28.0", "mem_free": 100000,
         "i2s": True, "inbuf": 4096, "crc": True, "io": ["blocking"], "vcp": False, "codec": 0, "native": 0}
READY = {"window": 4096, "payload": 1024, "frame_bytes": 4, "prefill": 0}


def _over(base: dict, lies: dict | None) -> dict:
    out = dict(base)
    for k, v in (lies or {}).items():
        if v is DROP:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def _json(obj) -> bytes:
    return json.dumps(obj).encode()


class HostileBoard:
    def __init__(self, *, hello: dict | None = None, ready: dict | None = None, summary: dict | None = None,
                 probe: dict | None = None, data_bytes: int | None = None, talk: bytes | None = None,
                 mute_repl: bool = False, no_summary: bool = False):
        self.hello = _over(HELLO, hello)
        self.ready_lies = ready
        self.summary_lies = summary
        self.probe_lies = probe
        self.data_bytes = data_bytes
        self.talk = talk
        self.mute_repl = mute_repl
        self.no_summary = no_summary
        self.master, self._slave, self.path = raw_pty()
        os.set_blocking(self.master, False)
        self.alive = True
        self.starts: list[dict] = []  # the STARTs the host sent
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    # -- the wire ---------------------------------------------------------------------------
    def _w(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self.alive:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                n = 0
            except OSError:
                return
            view = view[n:]
            if view:
                select.select([], [self.master], [], 0.05)

    def _frame(self, ftype: int, payload: bytes = b"") -> bytes:
        return self.enc.frame(ftype, payload)

    def _run(self) -> None:
        self.state = "repl"
        buf = bytearray()
        self.dec = proto.Decoder(max_payload=proto.MAX_PAYLOAD_LIMIT)
        self.enc = proto.Encoder()
        self.stream: dict | None = None
        while self.alive:
            want_write = self.talk is not None or (self.stream is not None and self.stream.get("sending"))
            r, w, _ = select.select([self.master], [self.master] if want_write else [], [], 0.05)
            if r:
                try:
                    data = os.read(self.master, 65536)
                except BlockingIOError:
                    data = b""
                except OSError:
                    return
                if self.talk is not None:
                    continue  # a program with Ctrl-C off: what the host sends is never read
                if self.state == "repl":
                    buf += data
                    if b"\x05A\x01" in buf:  # raw-paste: not here (mpremote falls back to plain raw)
                        buf.clear()
                        self._w(b"R\x00")
                        self.state = "code"
                    elif b"\x01" in buf and not self.mute_repl:
                        buf.clear()
                        self._w(BANNER)
                elif self.state == "code":
                    buf += data
                    if b"\x04" in buf:
                        buf.clear()
                        self._w(b"OK")
                        self.state = "agent"
                        self.enc = proto.Encoder(crc=True)
                        self.dec = proto.Decoder(max_payload=proto.MAX_PAYLOAD_LIMIT)
                        self._w(self._frame(T.HELLO, _json(self.hello)))
                else:
                    for f in self.dec.feed(data):
                        if self._on_frame(f):
                            buf.clear()
                            break
            if w:
                if self.talk is not None:
                    self._w(self.talk * 64)
                elif self.stream is not None and self.stream.get("sending"):
                    self._send_data()

    def _back_to_repl(self) -> bool:
        self.stream = None
        self.state = "repl"
        self._w(b"\x04\x04>")  # the exec's end (stdout, stderr) and the raw REPL's prompt
        return True

    # -- the agent ---------------------------------------------------------------------------
    def _on_frame(self, f: proto.Frame) -> bool:
        """Handle one host frame; True when the agent went back to the REPL."""
        if f.type == T.ABORT and self.stream is None:
            return self._back_to_repl()
        if f.type == T.START:
            cfg = f.json()
            self.starts.append(cfg)
            mode = cfg.get("mode")
            ready = dict(READY)
            if mode == "probe":
                ready["payload"] = cfg.get("payload", 1024)
            else:
                fb = cfg.get("bits", 16) // 8 * (2 if cfg.get("format") == "stereo" else 1)
                ready["frame_bytes"] = fb
                ready["payload"] = cfg.get("payload", 1024) // fb * fb
            self._w(self._frame(T.READY, _json(_over(ready, self.ready_lies))))
            self.stream = {"cfg": cfg, "mode": mode, "got": 0, "sent": 0, "t0": time.monotonic(),
                           "sending": mode == "rx", "fb": ready["frame_bytes"], "payload": ready["payload"]}
            return False
        s = self.stream
        if s is None:
            return False
        if f.type in (T.DATA, T.PROBE):
            s["got"] += len(f.payload)
            self._w(self._frame(T.CREDIT, f.wire_size.to_bytes(4, "little")))
            if s["mode"] == "probe" and s["got"] >= s["cfg"].get("probe_up", 0) and not s.get("answered"):
                s["answered"] = True
                down = s["cfg"].get("probe_down", 0)
                for i in range(0, down, s["payload"]):
                    self._w(self._frame(T.PROBE, bytes(min(s["payload"], down - i))))
                us = int((time.monotonic() - s["t0"]) * 1e6) or 1
                self._summary({"up_bytes": s["got"], "up_us": us, "down_bytes": down, "half_bytes": 0,
                               "half_us": 0}, self.probe_lies)
                return self._back_to_repl()
        elif f.type in (T.END, T.ABORT):
            if self.no_summary:
                s["sending"] = False
                return False
            frames = (s["got"] if s["mode"] == "tx" else s["sent"]) // max(1, s["fb"])
            self._summary({"frames": frames, "bytes": frames * s["fb"]}, self.summary_lies)
            return self._back_to_repl()
        return False

    def _summary(self, counts: dict, lies: dict | None) -> None:
        honest = {"reason": "end", "underruns": 0, "overruns": 0, "crc_errors": 0, "resyncs": 0, "seq_gaps": 0,
                  "heap_alloc": 0, "heap_frames": 0, "heap_method": "mem_alloc", "timeline": [["start", 0]],
                  "elapsed_us": 1000, "lost_frames": 0, **counts}
        self._w(self._frame(T.SUMMARY, _json(_over(honest, lies))))

    def _send_data(self) -> None:
        s = self.stream
        want = s["cfg"].get("frames") or 0
        left = want * s["fb"] - s["sent"] if want else s["payload"]
        n = min(s["payload"], left)
        if self.data_bytes is not None:
            n = self.data_bytes
        if n > 0:
            self._w(self._frame(T.DATA, bytes(n)))
            s["sent"] += n
        if want and s["sent"] >= want * s["fb"]:
            s["sending"] = False
            if self.no_summary:
                return
            frames = s["sent"] // s["fb"]
            self._summary({"frames": frames, "bytes": frames * s["fb"]}, self.summary_lies)
            self._back_to_repl()

    def close(self) -> None:
        self.alive = False
        self.thread.join(2)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


class NoiseServer(TcpServer):
    """A TCP endpoint (socket://) that sends random bytes forever to whoever connects."""

    noise = os.urandom(1 << 16)

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)  # a client that stopped reading: still look at `alive`
        try:
            while self.alive:
                try:
                    conn.sendall(self.noise)
                except TimeoutError:
                    continue
        except OSError:
            pass


class FloodingRfc2217(TcpServer):
    """An rfc2217:// endpoint that negotiates as a real server does (pyserial's PortManager over
    a loop:// port), then sends random bytes as fast as the network takes them."""

    scheme = "rfc2217"

    def _session(self, conn: socket.socket) -> None:
        import serial
        import serial.rfc2217

        out = LockedSender(conn)
        conn.settimeout(0.5)  # a client that stopped reading: still look at `alive`
        port = serial.serial_for_url("loop://", timeout=0.05)
        manager = serial.rfc2217.PortManager(port, out)
        done = threading.Event()
        opened = threading.Event()

        def listen():
            try:
                while not done.is_set():
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    if b"".join(manager.filter(data)):  # the client's first bytes: it has opened
                        opened.set()
            except OSError:
                pass
            done.set()

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        while not (opened.wait(0.1) or done.is_set() or not self.alive):
            pass  # the negotiation first: the flood comes after it
        noise = b"".join(manager.escape(os.urandom(1 << 16)))
        while self.alive and not done.is_set():
            try:
                out.write(noise)
            except TimeoutError:
                continue
            except OSError:
                break
        done.set()
        conn.close()
        listener.join(2)
        port.close()
