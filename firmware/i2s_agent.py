# i2s agent: runs on the board, streams audio between the host and machine.I2S.
# Protocol: docs/protocol.md. Plain MicroPython; the streaming loops allocate nothing
# (preallocated buffers, fixed memoryviews, readinto, integer maths only).
#
# This module says HELLO and dispatches START; the rest is in modules by role: i2s_link
# (framing, flow control), i2s_meter (meters, heap accounting), i2s_stream (one stream, the
# probe), i2s_play and i2s_record (the blocking TX and RX streams), i2s_styles (irq and
# asyncio), i2s_loop, i2s_duplex; the wire coder is i2s_wirecode (firmware/wirecode.py).
# Installed (`i2s install`), each is a .mpy and the `from i2s_... import` lines import them,
# the mode modules only when a START needs them. Uploaded into the raw REPL, all share its
# one namespace: the host drops those lines and sends each module before a START needs it.
# `_NAME = const(...)` names exist at compile time only: each module has its own, the
# protocol's generated into it by the host.
import sys
import gc

try:
    import ujson as json
except ImportError:
    import json

from i2s_link import Link
from i2s_stream import Stream, _codec, _open_i2s

VERSION = "dev"  # the host replaces this with a hash of the firmware when it uploads/installs
# frame types (_DATA, _ABORT, ...), _HDR, _TIMEOUT: the host puts their consts here as it sends it
# (and PROTO, the protocol version)


def _hello(link, source):
    try:
        import machine

        has_i2s = hasattr(machine, "I2S")
    except ImportError:
        has_i2s = False
    try:
        import os

        mach = os.uname().machine
    except Exception:
        mach = getattr(sys.implementation, "_machine", "?")
    io = ["blocking", "irq"]
    try:
        import asyncio  # noqa: F401

        io.append("asyncio")
    except ImportError:
        pass
    gc.collect()
    link.send_json(_HELLO, {  # protocol.HELLO_KEYS
        "proto": PROTO, "agent": VERSION, "source": source, "platform": sys.platform,
        "machine": mach, "micropython": ".".join(str(v) for v in sys.implementation.version[:3]),
        "mem_free": gc.mem_free(), "i2s": has_i2s, "inbuf": link.inbuf, "crc": link.crc,
        "io": io, "vcp": link.vcp is not None, "codec": _codec(),
        "native": getattr(sys.implementation, "_mpy", 0) >> 10,  # 0: no viper (no wire coder)
    })



def _stream(link, cfg):
    """The Stream that START's mode and io style need, its module imported only now."""
    mode = cfg["mode"]
    if mode in ("tx", "rx") and cfg.get("io", "blocking") != "blocking":
        from i2s_styles import Styles

        return Styles(link, cfg)
    if mode == "tx":
        from i2s_play import Play

        return Play(link, cfg)
    if mode == "rx":
        from i2s_record import Record

        return Record(link, cfg)
    return Stream(link, cfg)


def _baud(link):
    """BAUD from the host: a query (baud 0) or a proposal. A proposal is answered at the old
    rate, then the UART switches and the host must confirm at the new rate within 0.5 s, or
    the old rate comes back (docs/protocol.md)."""
    req = json.loads(bytes(memoryview(link.pbuf)[:link.plen]))
    want = req.get("baud", 0)
    if not want:
        link.send_json(_BAUD, {"baud": link.baud})
        return
    why = None
    if sys.platform != "esp32":
        why = "the REPL of this port is not a UART"
    else:
        try:
            from machine import UART  # noqa: F401
        except ImportError:
            why = "no machine.UART"
    if why:
        link.send_json(_BAUD, {"ok": False, "baud": link.baud, "why": why})
        return
    old = link.baud or req.get("restore", 115200)
    if not link.baud0:
        link.baud0 = req.get("restore", 115200)
    link.send_json(_BAUD, {"ok": True, "baud": want})
    try:
        link.set_baud(want)
    except Exception:
        link.baud = old
        return  # still at the old rate: the host's confirmation arrives garbled, it falls back
    t = link.read_frame(500)
    if t == _BAUD and link.plen and json.loads(bytes(memoryview(link.pbuf)[:link.plen])).get("baud") == want:
        link.send_json(_BAUD, {"ok": True, "baud": want, "confirmed": True})
    else:
        link.set_baud(old)


def main(source="uploaded", baud=0, baud0=0):
    """Say HELLO and run one START. `baud`: the REPL UART already runs at that rate (the host's
    loader moved it before the upload); `baud0` is put back on every way out."""
    link = Link()
    link.baud, link.baud0 = baud, baud0
    stream = None
    lp = None
    where = "start"
    try:
        _hello(link, source)
        link.set_payload(1024)  # room for START
        link.window = link.inbuf
        link.cbuf = bytearray(_HDR + 4 + 4)
        link.cview = memoryview(link.cbuf)[_HDR:_HDR + 4]
        t = link.read_frame(10000)
        while t == _BAUD:
            _baud(link)
            link.fresh()  # the stream's frames are counted from START on
            t = link.read_frame(10000)
        if t == _ABORT or t == _TIMEOUT:
            return  # the host changed its mind (or went away) before starting a stream
        if t != _START:
            raise RuntimeError("expected START from host, got %d" % t)
        cfg = json.loads(bytes(memoryview(link.pbuf)[:link.plen]))
        link.crc = link.crc and cfg.get("crc", True)
        if link.watch is not None:
            link.watch.limit = cfg.get("timeout_ms", 3000)
        link.window = min(cfg.get("window", link.inbuf), link.inbuf)
        payload = cfg.get("payload", 256)
        # a coded DATA payload is at most the audio plus its mode byte
        link.set_payload(max(payload, 64) + (1 if cfg.get("code") else 0),
                         spare=cfg.get("io", "blocking") != "blocking", long=True)
        stream = _stream(link, cfg)
        mode = cfg["mode"]
        extra = None
        if mode in ("tx", "rx"):
            where = "i2s"
            stream.audio = _open_i2s(cfg, mode)
            if mode == "tx":
                stream.meter.opened()  # the DMA runs from here: the meter's clock starts
            stream.mark("i2s_init")
        elif mode == "loop":
            where = "i2s"
            from i2s_loop import Loop

            lp = Loop(stream)
            lp.open()
        where = "stream"
        prefill = 0
        if mode == "duplex":
            from i2s_duplex import Duplex, dx_prefill

            prefill = dx_prefill(cfg, payload)
        link.send_json(_READY, {"window": link.window, "payload": payload, "frame_bytes": stream.fb,
                                "prefill": prefill,
                                "code": 1 if stream.coder is not None else 0})
        link.consumed = 0
        io = cfg.get("io", "blocking")
        if mode == "duplex":
            where = "i2s"
            dx = Duplex(stream)
            where = "stream"
            dx.run()
            extra = dx.summary()
        elif mode == "loop":
            lp.run()
            lp.close()
            extra = lp.summary()
        elif mode in ("tx", "rx") and io != "blocking":
            if io == "irq":
                stream.tx_irq() if mode == "tx" else stream.rx_irq()
            elif io == "asyncio":
                import asyncio

                asyncio.run(stream.tx_async() if mode == "tx" else stream.rx_async())
            else:
                raise ValueError("unknown io style %r" % io)
        elif mode == "tx":
            stream.tx()
        elif mode == "rx":
            stream.rx()
        elif mode == "probe":
            extra = stream.probe()
        else:
            raise ValueError("unknown mode %r" % mode)
        if stream.audio is not None:
            stream.port_xruns()
            stream.audio.deinit()
            stream.audio = None
            stream.mark("deinit")
        link.send_json(_SUMMARY, stream.summary(extra))
    except Exception as e:
        if stream is not None and stream.heap.on:
            stream.heap.stop()
        link.send_json(_ERROR, {"error": "%s: %s" % (type(e).__name__, e), "where": where})
    finally:
        if lp is not None and lp.rx is not None:
            lp.rx.deinit()
        if stream is not None and stream.audio is not None:
            stream.audio.deinit()
        # after a clean end the host sends nothing more: a short quiet is enough. After the
        # Watch's Ctrl-C the host is gone and what comes next is for the REPL (mpremote's)
        if not link.expired:
            link.drain(10 if stream is not None and stream.reason in ("end", "frames") else 50)
        link.close()
        gc.enable()
