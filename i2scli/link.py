"""Reaching the board: open the port, get to the raw REPL, start the agent, handshake, stream.

    with connect("sim://rp2") as agent:
        print(agent.hello["machine"])
        summary = agent.play(config, blocks)

The raw REPL work (interrupt, raw mode, raw-paste upload) is mpremote's serial transport;
this module adds the agent bootstrap and the framed, credit-controlled stream (docs/protocol.md).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.resources
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import serial

from i2scli import protocol as proto
from i2scli.protocol import FrameType as T

AGENT_NAME = "i2s_agent"
UPLOAD_MARKER = b"I2S:UPLOAD"
REPL_TAIL = b"\x04>"
DEFAULT_TIMEOUT_MS = 3000
READ_TIMEOUT = 0.05


class LinkError(Exception):
    """The port, the link or the protocol failed."""


class NoDevice(LinkError):
    """No board at that port."""


class BoardError(Exception):
    """The board cannot do what was asked; the message is the board's own words."""


class TooFast(BoardError):
    """The stream needs more bytes per second than the link carries."""


_STREAM_TYPES = frozenset((T.DATA, T.CREDIT, T.SUMMARY, T.ERROR, T.PHASE, T.PROBE))  # what a streaming agent sends
LINK_HEADROOM = 0.9  # use at most this share of the measured link rate


# -- the agent's source ------------------------------------------------------------------------
def _agent_text() -> str:
    return (importlib.resources.files("i2scli.firmware") / "i2s_agent.py").read_text()


def agent_version() -> str:
    """A hash of the agent source: an installed agent is used only when it matches."""
    return hashlib.sha256(_agent_text().encode()).hexdigest()[:12]


def agent_source() -> str:
    """The agent as it goes to the board: VERSION set to the source hash, comments and
    docstrings stripped (half the bytes to send, and less RAM for the board to compile it)."""
    text, n = re.subn(r'^VERSION = "dev".*$', f'VERSION = "{agent_version()}"', _agent_text(),
                      count=1, flags=re.M)
    assert n == 1, "firmware/i2s_agent.py lost its VERSION line"
    return _minify(text)


def agent_chunks(limit: int = 4096) -> list[str]:
    """The agent split at top-level statements into pieces of at most ~limit bytes: the board
    parses each on its own, so a small heap never holds the whole module's parse tree."""
    tree = ast.parse(agent_source())
    # `_NAME = const(...)` exists only at compile time in MicroPython (not as a global), so
    # every chunk carries the constants it may use.
    consts = "from micropython import const\n" + "".join(
        ast.unparse(n) + "\n" for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
        and getattr(n.value.func, "id", None) == "const")
    chunks, current = [], ""
    for node in tree.body:
        text = ast.unparse(node) + "\n"
        if current and len(current) + len(text) > limit:
            chunks.append(current)
            current = ""
        current += text
    if current:
        chunks.append(current)
    return [chunks[0]] + [consts + c for c in chunks[1:]]


def _minify(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body.pop(0)
            if not body:
                body.append(ast.Pass())
    return ast.unparse(tree) + "\n"


BOOTSTRAP = """\
import sys
try:
    sys.modules.pop({name!r}, None)
    import {name} as _i2s_a
    _i2s_ok = _i2s_a.VERSION == {version!r}
except ImportError:
    _i2s_ok = False
if _i2s_ok:
    _i2s_a.main('installed')
else:
    print({marker!r})
"""


# -- the port ----------------------------------------------------------------------------------
def open_transport(port: str):
    """mpremote's serial transport on any pyserial URL, opened exclusively."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    import i2scli.sim  # noqa: F401  (registers sim://)

    if port.startswith("sim://"):
        from i2scli.sim.protocol_sim import check_url

        try:
            check_url(port)
        except ValueError as e:
            raise NoDevice(str(e)) from None
    elif "://" not in port and not os.path.exists(port) and not port.upper().startswith("COM"):
        raise NoDevice(f"no such port {port} (`i2s devices` lists ports)")
    try:
        t = SerialTransport(port, baudrate=115200, exclusive=True)
    except (OSError, serial.SerialException, ValueError, TransportError) as e:
        msg = _first_line(e)
        if "failed to access" in msg and "://" not in port:
            msg = _open_error(port) or msg  # mpremote drops pyserial's reason: ask pyserial
        if "lock" in msg.lower() or "busy" in msg.lower() or "exclusive" in msg.lower():
            raise NoDevice(f"{port} is in use by another program (close it, or pick another port)") from None
        raise NoDevice(f"cannot open {port}: {msg}") from None
    # Short reads for the stream loops, set once: on rfc2217:// every change is renegotiated.
    t.serial.timeout = READ_TIMEOUT
    sock = getattr(t.serial, "_socket", None)
    if sock is not None:  # socket:// and rfc2217://: credits must not wait for Nagle
        try:
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    return t


@contextmanager
def _patient(t, timeout: float = 1.0):
    """mpremote's REPL handshakes want reads that wait; the stream loops want short ones."""
    t.serial.timeout = timeout
    try:
        yield
    finally:
        t.serial.timeout = READ_TIMEOUT


class Agent:
    """The agent running on a connected board; one stream at a time."""

    def __init__(self, transport, port: str):
        self.transport = transport
        self.serial = transport.serial
        self.port = port
        self.hello: dict = {}
        self.identity: dict = {}
        self._backlog: list = []
        self._relaunch: str | None = None
        self._prompt_ready = False
        self.stats = {"crc_errors": 0, "resyncs": 0, "seq_gaps": 0}
        self._silence_limit: float | None = None  # during a stream: give up after this long without a frame
        self._heard = 0.0
        self._banner_seen = False
        self._timeout_s = DEFAULT_TIMEOUT_MS / 1000

    # -- starting -----------------------------------------------------------------------------
    def launch(self, timeout: float = 10.0) -> dict:
        """Run the agent: the installed copy when its version matches, else upload it."""
        t = self.transport
        for _ in range(3):
            try:
                # An agent left running by a host that died reads our Ctrl-C as data and
                # returns to the REPL only when its watchdog fires: so try again.
                with _patient(t):
                    t.enter_raw_repl(soft_reset=False, timeout_overall=timeout / 3)
                break
            except Exception as e:
                error = e
        else:
            e = error
            raise LinkError(
                f"the board at {self.port} did not answer Ctrl-C and the raw REPL "
                f"({_first_line(e)}); a program that ignores Ctrl-C may be running: reset the board"
            ) from None
        self._prompt_ready = True
        if self._relaunch:
            self._exec(self._relaunch)
            return self._await_hello(timeout)
        self._exec(BOOTSTRAP.format(name=AGENT_NAME, version=agent_version(), marker=UPLOAD_MARKER.decode()))
        hello = self._await_hello(timeout, allow_upload=True)
        if hello is None:
            for chunk in agent_chunks():
                self._exec(chunk)
                raw = self._read_until(REPL_TAIL, timeout)
                if not raw.endswith(b"\x04\x04>"):
                    raise BoardError(_repl_error(raw))
            self._relaunch = "main('uploaded')\n"
            self._exec(self._relaunch)
            hello = self._await_hello(timeout)
        else:
            self._relaunch = "_i2s_a.main('installed')\n"
        return hello

    def _exec(self, code: str) -> None:
        if not self._prompt_ready:
            # The last exec's closing '>' was read with its output; Ctrl-A (raw REPL reset)
            # prints a fresh one, read byte by byte up to it so mpremote finds its prompt.
            self._write(b"\x01")
            with _patient(self.transport, 5):
                self.serial.read_until(b"raw REPL; CTRL-B to exit\r\n")
        self._prompt_ready = False
        try:
            with _patient(self.transport):
                self.transport.exec_raw_no_follow(code)
        except Exception as e:
            raise LinkError(f"could not start code on the board: {_first_line(e)}") from None

    def _await_hello(self, timeout: float, allow_upload: bool = False) -> dict | None:
        dec = proto.Decoder(max_payload=4096)
        raw = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self._read_some()
            if not data:
                continue
            for f in dec.feed(data):
                if f.type == T.HELLO:
                    self.hello = _json(f, "proto")
                    self.identity = dict(self.hello)  # outlives the agent run
                    self.hello_decoder = dec
                    if self.hello.get("proto") != proto.PROTO_VERSION:
                        raise LinkError(
                            f"the agent on the board speaks protocol {self.hello.get('proto')}, "
                            f"this i2s speaks {proto.PROTO_VERSION}: run `i2s install` again")
                    return self.hello
                if f.type == T.ERROR:
                    raise BoardError(str(_json(f).get("error", "agent error")))
            raw += data
            del raw[:-65536]  # bounded, whatever the board sends
            if allow_upload and UPLOAD_MARKER in raw:
                self._read_until(REPL_TAIL, 5.0, raw)
                return None
            if raw.count(b"\x04") >= 2:  # the REPL finished the exec with an error
                if not re.search(rb"Traceback|Error", raw):
                    raise LinkError(f"the board at {self.port} answered with something that is not the i2s agent")
                raise BoardError(_repl_error(bytes(raw)))
        raise LinkError(f"no answer from the agent on {self.port} within {timeout:.0f} s")

    def _read_some(self) -> bytes:
        s = self.serial
        try:
            n = s.in_waiting
            if n:
                return s.read(n)
            return s.read(1)  # waits at most READ_TIMEOUT
        except (OSError, serial.SerialException) as e:
            raise LinkError(f"lost the board at {self.port}: {_first_line(e)}") from None

    def _read_until(self, marker: bytes, timeout: float, buf: bytearray | None = None) -> bytes:
        buf = bytearray() if buf is None else buf
        deadline = time.monotonic() + timeout
        while marker not in buf and time.monotonic() < deadline:
            buf += self._read_some()
        return bytes(buf)

    def describe(self) -> str:
        """The board as people know it, e.g. 'Raspberry Pi Pico with RP2040 (rp2)'."""
        who = self.hello or getattr(self, "identity", {})
        return f"{who.get('machine', 'board')} ({who.get('platform', '?')})"

    def require_i2s(self) -> None:
        if not (self.hello or self.identity).get("i2s"):
            raise BoardError(
                f"{self.describe()} at {self.port} has no machine.I2S: its MicroPython firmware "
                f"was built without it (use a firmware or board with I2S support)")

    def check_fit(self, wire_rate: float, direction: str, what: str) -> dict:
        """Refuse, before starting, a stream of wire_rate bytes/s that the link cannot carry
        (direction 'up' = to the board, 'down' = from it). Probes once per connection."""
        if getattr(self, "rates", None) is None:
            self.rates = self.probe()
        have = self.rates[direction]
        if wire_rate > have * LINK_HEADROOM:
            where = "to" if direction == "up" else "from"
            raise TooFast(
                f"{what} needs {wire_rate / 1000:.1f} kB/s {where} the board, but the link to "
                f"{self.describe()} carries {have / 1000:.1f} kB/s (measured): "
                f"use a lower rate (-r), fewer bits (-b 16) or one channel (-c 1)")
        return self.rates

    # -- one stream ---------------------------------------------------------------------------
    def _begin(self, cfg: dict) -> tuple[proto.Decoder, proto.Encoder, proto.CreditGate, dict]:
        """START, then READY (or the board's error)."""
        if not self.hello:
            self.launch()
        crc = bool(self.hello.get("crc")) and cfg.get("crc", True)
        cfg = {"timeout_ms": DEFAULT_TIMEOUT_MS, **cfg, "crc": crc}
        cfg = {k: v for k, v in cfg.items() if v is not None}
        enc = proto.Encoder(crc=crc)
        dec = getattr(self, "hello_decoder", None) or proto.Decoder(max_payload=4096)
        dec.max_payload = max(4096, cfg.get("payload", 0))
        self._timeout_s = cfg["timeout_ms"] / 1000
        start = enc.json(T.START, cfg)
        inbuf = self.hello.get("inbuf", 256)
        # HELLO implies inbuf bytes of credit. A larger START (duplex on an ESP32) goes in
        # half-buffer slices, paced for a 115200-baud UART, while the agent reads it.
        step = max(16, inbuf // 2)
        for i in range(0, len(start), step):
            if i:
                time.sleep(step / 11520)
            self._write(start[i:i + step])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frames = dec.feed(self._read_some())
            for i, f in enumerate(frames):
                if f.type == T.READY:
                    dec.pending_garbage(clear=True)  # from here on, skipped bytes are this stream's
                    self._backlog = frames[i + 1:]  # the stream's first frames may ride along
                    ready = _json(f, "window", "payload")
                    self._watch_silence(cfg, ready)
                    gate = proto.CreditGate()
                    gate.grant(ready["window"])
                    return dec, enc, gate, ready
                if f.type == T.ERROR:
                    self._finish()
                    raise BoardError(str(_json(f).get("error", "agent error")))
        raise LinkError(f"the agent on {self.port} did not get ready")

    def _watch_silence(self, cfg: dict, ready: dict) -> None:
        """The host's own watchdog: during a stream the board sends DATA or CREDIT all the time,
        so a board silent for longer than the agent's timeout, plus what its buffers can still
        be playing out, is gone (reset, hung, link stalled): give up instead of waiting forever."""
        byte_rate = cfg.get("rate", 8000) * max(1, ready.get("frame_bytes") or 1)
        drain = ((cfg.get("ibuf") or 0) + (ready.get("prefill") or 0)) / byte_rate
        self._silence_limit = cfg.get("timeout_ms", DEFAULT_TIMEOUT_MS) / 1000 + 1.0 + drain
        self._heard = time.monotonic()
        self._banner_seen = False

    def _next_frames(self, dec: proto.Decoder) -> list:
        if self._backlog:
            frames, self._backlog = self._backlog, []
            self._heard = time.monotonic()
            return frames
        data = self._read_some()
        if b"MicroPython v" in data or b'Type "help()"' in data:
            self._banner_seen = True  # a start-up banner mid-stream: the board reset
        frames = dec.feed(data)
        if any(f.type in _STREAM_TYPES for f in frames):  # frames the board has no business sending do not count
            self._heard = time.monotonic()
        elif self._silence_limit is not None and time.monotonic() - self._heard > self._silence_limit:
            self._silence_limit = None
            seen = dec.pending_garbage()
            if self._banner_seen or b"MicroPython" in seen or b'Type "help()"' in seen:
                raise LinkError(f"the board at {self.port} reset during the stream (its start-up banner arrived)")
            raise LinkError(f"no word from the board at {self.port} for {time.monotonic() - self._heard:.1f} s "
                            f"(link stalled or board hung)")
        return frames

    def _write(self, data: bytes) -> None:
        try:
            self.serial.write(data)
        except (OSError, serial.SerialException) as e:
            raise LinkError(f"lost the board at {self.port}: {_first_line(e)}") from None

    def _finish(self, dec: proto.Decoder | None = None) -> None:
        """After the agent's last frame: wait for the raw REPL to come back (its closing bytes
        may already have gone through the decoder with the last frame)."""
        self._silence_limit = None
        seen = dec.pending_garbage(clear=True) if dec is not None else b""
        if REPL_TAIL not in seen:
            self._read_until(REPL_TAIL, 3.0, bytearray(seen))
        self.hello = {}

    def _collect(self, dec: proto.Decoder, frames, on_data=None, gate=None) -> dict | None:
        for f in frames:
            if f.type == T.CREDIT and gate is not None:
                gate.grant(int.from_bytes(f.payload[:4], "little"))
            elif f.type == T.DATA and on_data is not None:
                on_data(f.payload)
            elif f.type == T.SUMMARY:
                return _json(f)
            elif f.type == T.ERROR:
                self._finish()
                raise BoardError(str(_json(f).get("error", "agent error")))
        return None

    def _summarise(self, summary: dict, dec: proto.Decoder) -> dict:
        # the REPL's closing bytes after the last frame are expected, not a resync
        tail_run = 1 if dec.pending_garbage().rstrip(b">").endswith(b"\x04") else 0
        summary["host_crc_errors"] = dec.crc_errors
        summary["host_resyncs"] = dec.resyncs - tail_run
        summary["host_seq_gaps"] = dec.seq_gaps
        self._finish(dec)
        if summary.get("reason") == "timeout":
            # the agent's watchdog: it heard nothing from us for timeout_ms and stopped the stream
            raise LinkError(f"the board stopped the stream: nothing from the host reached it for "
                            f"{self._timeout_s:g} s (link stalled?)")
        return summary

    def play(self, cfg: dict, blocks: Iterable[bytes],
             progress: Callable[[int], None] | None = None) -> dict:
        """Stream audio bytes (bus format) to I2S TX; returns the agent's summary."""
        cfg = {**cfg, "mode": "tx"}
        dec, enc, gate, ready = self._begin(cfg)
        payload = ready["payload"]
        overhead = proto.HEADER_SIZE + (proto.CRC_SIZE if enc.crc else 0)
        pending = bytearray()
        sent = 0
        summary = None

        def send(chunk: bytes) -> None:
            nonlocal summary
            frame = enc.frame(T.DATA, chunk)
            while not gate.can_send(len(frame)):
                summary = self._collect(dec, self._next_frames(dec), gate=gate) or summary
                if summary is not None:
                    self._summarise(summary, dec)  # raises for the agent's watchdog
                    raise LinkError(f"the agent stopped early ({summary.get('reason')})")
            gate.spend(len(frame))
            self._write(frame)

        for block in blocks:
            pending += block
            while len(pending) >= payload:
                send(bytes(pending[:payload]))
                del pending[:payload]
                sent += payload
                if progress:
                    progress(sent)
            if self.serial.in_waiting:
                self._collect(dec, self._next_frames(dec), gate=gate)
        if pending:
            send(bytes(pending))
            sent += len(pending)
        while not gate.can_send(overhead):
            self._collect(dec, self._next_frames(dec), gate=gate)
        self._write(enc.frame(T.END))
        return self._summarise(self._await_summary(dec, gate), dec)

    def _await_summary(self, dec, gate=None, on_data=None, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            summary = self._collect(dec, self._next_frames(dec), on_data=on_data, gate=gate)
            if summary is not None:
                return summary
        raise LinkError(f"the agent on {self.port} did not report the end of the stream")

    def record(self, cfg: dict, on_data: Callable[[bytes], None],
               stop: threading.Event | None = None) -> dict:
        """Stream I2S RX to on_data (bus format bytes) until cfg['frames'] or stop is set."""
        cfg = {**cfg, "mode": "rx"}
        dec, enc, gate, ready = self._begin(cfg)
        keepalive = cfg.get("timeout_ms", DEFAULT_TIMEOUT_MS) / 4000
        next_keepalive = time.monotonic() + keepalive
        while True:
            summary = self._collect(dec, self._next_frames(dec), on_data=on_data, gate=gate)
            if summary is not None:
                return self._summarise(summary, dec)
            if stop is not None and stop.is_set():
                self._write(enc.frame(T.END))
                return self._summarise(self._await_summary(dec, gate, on_data), dec)
            if time.monotonic() >= next_keepalive:
                if gate.can_send(enc.size(0)):
                    frame = enc.frame(T.KEEPALIVE)
                    gate.spend(len(frame))
                    self._write(frame)
                next_keepalive = time.monotonic() + keepalive

    def duplex(self, cfg: dict, tx_blocks: Iterable[bytes], on_rx: Callable[[bytes], None],
               switch: threading.Event | None = None, stop: threading.Event | None = None,
               on_phase: Callable[[str], None] | None = None) -> dict:
        """Half-duplex: cfg['order'] record-play or play-record, switched on the board.

        TX audio (tx_blocks, bus format) is pre-sent while RX runs, up to what the board parks
        (READY's prefill); `switch` ends an open-ended recording (rx_frames 0), `stop` ends
        the whole exchange early."""
        cfg = {**cfg, "mode": "duplex"}
        order = cfg.get("order", "record-play")
        dec, enc, gate, ready = self._begin(cfg)
        payload = ready["payload"]
        prefill = ready.get("prefill", 0)
        phase = None
        pending = bytearray()
        source = iter(tx_blocks)
        exhausted = False
        switch_sent = end_sent = False
        keepalive = cfg.get("timeout_ms", DEFAULT_TIMEOUT_MS) / 4000
        next_keepalive = time.monotonic() + keepalive
        overhead = proto.HEADER_SIZE + (proto.CRC_SIZE if enc.crc else 0)

        def control(ftype) -> bool:
            if not gate.can_send(enc.size(0)):  # check before encoding: a frame takes a seq number
                return False
            frame = enc.frame(ftype)
            gate.spend(len(frame))
            self._write(frame)
            return True

        while True:
            for f in self._next_frames(dec):
                if f.type == T.DATA:
                    on_rx(f.payload)
                elif f.type == T.CREDIT:
                    gate.grant(f.credit())
                elif f.type == T.PHASE:
                    phase = _json(f).get("phase")
                    if on_phase:
                        on_phase(phase)
                elif f.type == T.SUMMARY:
                    return self._summarise(_json(f), dec)
                elif f.type == T.ERROR:
                    self._finish()
                    raise BoardError(str(_json(f).get("error", "agent error")))
            if stop is not None and stop.is_set() and not end_sent:
                end_sent = control(T.ABORT)
                continue
            # TX audio: before the switch only what the board can park, and always leave
            # credit for a SWITCH/END frame behind it
            while not exhausted and len(pending) < payload:
                try:
                    more = next(source)
                except StopIteration:
                    exhausted = True
                    break
                if not more:
                    break  # nothing yet (echo: the recording is still coming)
                pending += more
            may_send = phase == "tx" or (order == "record-play" and phase in (None, "rx") and prefill > 0)
            if pending and may_send and not end_sent:
                chunk = bytes(pending[:payload])
                if phase != "tx":
                    chunk = chunk[:prefill]
                if chunk and gate.available >= enc.size(len(chunk)) + overhead:
                    frame = enc.frame(T.DATA, chunk)
                    gate.spend(len(frame))
                    self._write(frame)
                    del pending[:len(chunk)]
                    if phase != "tx":
                        prefill -= len(chunk)
            tx_done = exhausted and not pending
            host_ends_rx = not cfg.get("rx_frames")  # else the board counts the recording itself
            if order == "record-play":
                if host_ends_rx and switch is not None and switch.is_set() and not switch_sent and phase == "rx":
                    switch_sent = control(T.SWITCH)
                if tx_done and phase == "tx" and not end_sent:
                    end_sent = control(T.END)
            else:
                if tx_done and phase == "tx" and not switch_sent:
                    switch_sent = control(T.SWITCH)
                if host_ends_rx and switch is not None and switch.is_set() and phase == "rx" and not end_sent:
                    end_sent = control(T.END)
            if phase != "tx" and time.monotonic() >= next_keepalive:
                control(T.KEEPALIVE)
                next_keepalive = time.monotonic() + keepalive

    def probe(self, up: int = 8192, down: int = 16384) -> dict:
        """Measure what the link carries each way, in bytes/s."""
        cfg = {"mode": "probe", "probe_up": up, "probe_down": down, "bits": 16, "format": "mono",
               "rate": 8000, "ibuf": 0, "payload": 0}
        dec, enc, gate, ready = self._begin({**cfg, "payload": min(4096, self.hello.get("inbuf", 256))})
        payload = max(16, gate.available // 2 - proto.HEADER_SIZE - proto.CRC_SIZE)
        payload = min(payload, ready["payload"])
        filler = bytes(payload)
        sent = 0
        t0 = time.monotonic()
        while sent < up:
            chunk = filler[: min(payload, up - sent)]
            frame = enc.frame(T.PROBE, chunk)
            while not gate.can_send(len(frame)):
                self._collect(dec, self._next_frames(dec), gate=gate)
            gate.spend(len(frame))
            self._write(frame)
            sent += len(chunk)
        got, t_first, summary = 0, None, None
        while summary is None:
            frames = self._next_frames(dec)
            for f in frames:
                if f.type == T.PROBE:
                    if t_first is None:
                        t_first = time.monotonic()
                    got += len(f.payload)
            summary = self._collect(dec, frames, gate=gate)
            if time.monotonic() - t0 > 30:
                raise LinkError("the link probe did not finish")
        t_last = time.monotonic()
        self._summarise(summary, dec)
        up_rate = summary["up_bytes"] / max(summary["up_us"], 1) * 1e6
        down_rate = got / max(t_last - (t_first or t_last), 1e-6)
        return {"up": up_rate, "down": down_rate, "up_bytes": summary["up_bytes"], "down_bytes": got}

    def close(self) -> None:
        try:
            if self.hello:  # the agent is waiting for START: tell it to go back to the REPL
                self._write(proto.Encoder(crc=bool(self.hello.get("crc"))).frame(T.ABORT))
                self._finish()
        except (LinkError, OSError):
            pass
        try:
            self.transport.exit_raw_repl()
        except Exception:
            pass
        try:
            self.transport.close()
        except Exception:
            pass


@contextmanager
def connect(port: str, *, launch: bool = True, timeout: float = 10.0) -> Iterator[Agent]:
    """A board at `port` with the agent started (HELLO received)."""
    agent = Agent(open_transport(port), port)
    try:
        if launch:
            agent.launch(timeout)
        yield agent
    finally:
        agent.close()


def install(port: str, remove: bool = False) -> str:
    """Store the agent on the board's filesystem (or take it away); returns what was done."""
    agent = Agent(open_transport(port), port)
    t = agent.transport
    try:
        t.serial.timeout = 1.0
        t.enter_raw_repl(soft_reset=False)
        path = f"/{AGENT_NAME}.py"
        if remove:
            if t.fs_exists(path):
                t.fs_rmfile(path)
                return f"removed {path}"
            return f"no agent installed at {path}"
        t.fs_writefile(path, agent_source().encode())
        return f"installed agent {agent_version()} at {path}"
    except (OSError, serial.SerialException) as e:
        raise LinkError(f"lost the board at {port}: {_first_line(e)}") from None
    finally:
        agent.close()


def _json(f: proto.Frame, *required: str) -> dict:
    """A frame's JSON payload as the protocol defines it (an object with `required` keys), or a
    LinkError: a board that sends anything else is not (or no longer) running the agent."""
    try:
        obj = f.json()
    except ValueError:
        obj = None
    if not isinstance(obj, dict) or any(k not in obj for k in required):
        raise LinkError(f"the board sent a malformed {f.type.name} frame: not the i2s agent, or a damaged link")
    return obj


def _open_error(port: str) -> str | None:
    """Why pyserial cannot open a device path exclusively (None if it can)."""
    try:
        serial.Serial(port, exclusive=True).close()
    except Exception as e:  # noqa: BLE001 - any reason is the answer
        return _first_line(e)
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _repl_error(raw: bytes) -> str:
    """The last line of a traceback the raw REPL printed between its two \\x04 markers."""
    parts = raw.split(b"\x04")
    err = parts[1] if len(parts) > 2 else raw
    lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "the board reported an error"
