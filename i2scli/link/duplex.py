"""Half-duplex over one Stream: the board records, switches its one SD line and plays (or the
other way round); the host pre-sends TX audio into the board's prefill slots while RX runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from i2scli import protocol as proto
from i2scli.link import schema
from i2scli.link.errors import board_error, frame_json
from i2scli.link.launch import Launcher
from i2scli.link.stream import DEFAULT_TIMEOUT_MS, Stream
from i2scli.protocol import FrameType as T


def duplex(launcher: Launcher, cfg: dict, tx_blocks: Iterable[bytes], on_rx: Callable[[bytes], None],
           switch: threading.Event | None = None, stop: threading.Event | None = None,
           on_phase: Callable[[str], None] | None = None) -> dict:
    """Half-duplex: cfg['order'] record-play or play-record, switched on the board.

    TX audio (tx_blocks, bus format) is pre-sent while RX runs, up to what the board parks
    (READY's prefill); `switch` ends an open-ended recording (rx_frames 0), `stop` ends
    the whole exchange early."""
    cfg = {**cfg, "mode": "duplex"}
    order = cfg.get("order", "record-play")
    s = Stream(launcher, cfg)
    enc = s.enc
    payload = s.ready["payload"]
    prefill = s.ready.get("prefill", 0)
    phase = None
    pending = bytearray()
    out = None  # (audio bytes, payload, crc) of a DATA frame waiting for credit
    source = iter(tx_blocks)
    exhausted = False
    switch_sent = end_sent = False
    keepalive = cfg.get("timeout_ms", DEFAULT_TIMEOUT_MS) / 4000
    next_keepalive = time.monotonic() + keepalive

    while True:
        for f in s.next_frames():
            if f.type == T.DATA:
                audio = s.audio_of(f)  # a damaged coded frame is counted there, and never written
                if audio is not None:
                    on_rx(audio)
            elif f.type == T.CREDIT:
                s.credit(s.credit_of(f))
            elif f.type == T.PHASE:
                phase = schema.check("PHASE", frame_json(f), s.port.name).get("phase")
                if on_phase:
                    on_phase(phase)
            elif f.type == T.SUMMARY:
                return s.summarise(s.summary_of(f))
            elif f.type == T.ERROR:
                launcher.finish()
                raise board_error(f)
        if stop is not None and stop.is_set() and not end_sent:
            end_sent = s.control(T.ABORT)
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
            if out is None:  # the next DATA payload, coded once however long credit takes
                chunk = bytes(pending[:payload])
                if phase != "tx":
                    chunk = chunk[:prefill]
                if chunk:
                    out = (len(chunk), chunk, None) if s.coding is None \
                        else (len(chunk), *s.coding.encode_many(chunk, payload)[0])
            if out is not None:
                n, body, crc = out
                if s.room(proto.frame_size(len(body), enc.crc if crc is None else crc) + s.overhead):
                    s.send(enc.frame(T.DATA, body, crc=crc))
                    out = None
                    del pending[:n]
                    if phase != "tx":
                        prefill -= n
        tx_done = exhausted and not pending
        host_ends_rx = not cfg.get("rx_frames")  # else the board counts the recording itself
        if order == "record-play":
            if host_ends_rx and switch is not None and switch.is_set() and not switch_sent and phase == "rx":
                switch_sent = s.control(T.SWITCH)
            if tx_done and phase == "tx" and not end_sent:
                end_sent = s.control(T.END)
        else:
            if tx_done and phase == "tx" and not switch_sent:
                switch_sent = s.control(T.SWITCH)
            if host_ends_rx and switch is not None and switch.is_set() and phase == "rx" and not end_sent:
                end_sent = s.control(T.END)
        if phase != "tx" and time.monotonic() >= next_keepalive:
            s.control(T.KEEPALIVE)
            next_keepalive = time.monotonic() + keepalive
