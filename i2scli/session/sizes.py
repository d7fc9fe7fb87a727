"""A stream's START config from what the board said: pins, format, ring, payload. Pure: no board is asked."""

from __future__ import annotations

from dataclasses import dataclass, field

from i2scli import protocol
from i2scli.audio.busformat import BusFormat
from i2scli.session import ring
from i2scli.session.options import BusOptions, DuplexOptions
from i2scli.targets import boards
from i2scli.targets.boardinfo import RX_PAYLOAD


@dataclass(frozen=True)
class Facts:
    """What a board and its link said: all a plan needs, so that planning asks no board."""

    hello: dict  # the agent's HELLO ({} before it runs)
    identity: dict  # the board's identity (platform, inbuf, ...), known before the agent runs
    board: str  # the board as people know it, for messages
    link: dict | None = None  # bytes/s each way ("up", "down"), measured or remembered; None: not measured
    stall: float | None = None  # the longest stall the link probe saw (s): it sizes the ring
    coder_errors: dict = field(default_factory=dict)  # direction -> why the board could not load its coder

    @property
    def who(self) -> dict:
        return self.hello or self.identity


def preset(f: Facts, opts: BusOptions) -> boards.Board | None:
    if opts.board:
        try:
            return boards.BOARDS[opts.board]
        except KeyError:
            raise ValueError(f"unknown board preset {opts.board!r} (known: {', '.join(boards.BOARDS)})") from None
    return boards.detect(f.identity or f.hello)


def payload(f: Facts, mode: str, bus: BusFormat) -> int:
    """Audio bytes per DATA frame of a stream in `mode` (tx: to the board)."""
    fb = bus.frame_bytes
    if mode == "tx":
        return protocol.tx_payload(f.identity.get("inbuf", 256), fb)
    return RX_PAYLOAD // fb * fb


def sizes(f: Facts, opts: BusOptions, mode: str, bus: BusFormat, board: boards.Board | None,
          modes: tuple[str, ...] | None = None) -> dict:
    """The START config but the pins: format, ring, payload and timeout that fit the board.
    `modes`: the directions the ring serves (duplex: both), else `mode`'s."""
    size = payload(f, mode, bus)
    if size <= 0:
        raise ValueError(f"the board's input buffer ({f.hello.get('inbuf')} bytes) is too small for "
                         f"{bus.describe()} frames")
    ibuf, why = ring.choose(bus, f.who.get("platform", ""), modes or (mode,),
                            ibuf=opts.ibuf or (board.ibuf if board else None), buffer_time=opts.buffer_time,
                            stall=f.stall, mem_free=f.who.get("mem_free"), stream_seconds=opts.stream_seconds,
                            latency=opts.latency, reserve=opts.latency_reserve)
    return {"bits": bus.bits, "format": "stereo" if bus.channels == 2 else "mono", "rate": bus.rate,
            "ibuf": ibuf, "payload": size, "io": opts.io, "shift": opts.shift or None,
            "timeout_ms": int(opts.timeout * 1000), "_ring": why}


def config(f: Facts, opts: BusOptions, mode: str, bus: BusFormat, modes: tuple[str, ...] | None = None) -> dict:
    """The START config for the agent: pins from the preset and overrides, sizes that fit."""
    board = preset(f, opts)
    pins = boards.resolve(board, mode, id=opts.id, sck=opts.sck, ws=opts.ws, sd=opts.sd, mck=opts.mck)
    return {"id": pins.id, "sck": pins.sck, "ws": pins.ws, "sd": pins.sd, "mck": pins.mck,
            **sizes(f, opts, mode, bus, board, modes)}


def duplex_config(f: Facts, opts: BusOptions, dx: DuplexOptions, bus: BusFormat, rx_frames: int) -> dict:
    """The START config of a duplex exchange: both buses' pins, the DIR pin, the switch."""
    board = preset(f, opts)
    tx = boards.resolve(board, "tx", id=opts.id, sck=opts.sck, ws=opts.ws, sd=dx.sd_tx or opts.sd, mck=opts.mck)
    rx = boards.resolve(board, "rx", id=opts.id, sck=opts.sck, ws=opts.ws, sd=dx.sd_rx or opts.sd, mck=opts.mck)
    base = config(f, opts, "tx", bus, ("tx", "rx"))
    dir_pin = dx.dir_pin if dx.dir_pin is not None else (board.dir_pin if board else None)
    cfg = {k: base[k] for k in ("bits", "format", "rate", "ibuf", "payload", "io", "timeout_ms", "_ring")}
    cfg.update({
        "tx": {"id": tx.id, "sck": tx.sck, "ws": tx.ws, "sd": tx.sd, "mck": tx.mck},
        "rx": {"id": rx.id, "sck": rx.sck, "ws": rx.ws, "sd": rx.sd, "mck": rx.mck},
        "dir": dir_pin, "dir_rx_level": dx.dir_rx_level, "order": dx.order,
        "switch_delay_us": int(round(dx.switch_delay * 1e6)),
        "lead_in_frames": int(round(dx.lead_in * bus.rate)),
        "discard_frames": int(round(dx.rx_discard * bus.rate)),
        "rx_frames": rx_frames,
    })
    if dx.prefill:
        cfg["prefill"] = dx.prefill
    return cfg
