"""Board presets: which I2S bus and pins a board uses, per direction, from i2scli/targets/
(one module per board family), and the pins a command ends up with."""

from __future__ import annotations

from dataclasses import replace

from i2scli import targets
from i2scli.errors import worded
from i2scli.targets import Board, Pins

__all__ = ["BOARDS", "Board", "Pins", "detect", "parse_pin", "resolve", "tx_dma_buffers", "tx_dma_half"]

BOARDS: dict[str, Board] = {t.NAME: t.board() for t in targets.all_targets()}


def detect(hello: dict) -> Board | None:
    """The preset for the board that said hello, if one fits."""
    t = targets.detect(hello)
    return None if t is None else BOARDS[t.NAME]


def tx_dma_half(hello: dict, bits: int) -> int:
    """Frames in one TX DMA half on this board's port (stereo frames whatever the format:
    mono samples are doubled), 0 when not known."""
    t = targets.detect(hello)
    half = t.TX_DMA_HALF_BYTES if t else targets.port_fact(hello.get("platform", ""), "TX_DMA_HALF_BYTES", 0)
    return half // (4 if bits == 16 else 8)


def tx_dma_buffers(hello: dict, frame_bytes: int, ibuf: int) -> tuple[int, int]:
    """On a port whose machine.I2S runs ESP-IDF's DMA buffers (esp32): frames in one TX buffer
    and in all N of them (N = ibuf // (buffer frames * frame_bytes), at least 2: the TX DMA frame
    is the stream's own); (0, 0) on the other ports."""
    t = targets.detect(hello)
    n = t.IDF_DMA_FRAMES if t else targets.port_fact(hello.get("platform", ""), "IDF_DMA_FRAMES", 0)
    if not n:
        return 0, 0
    return n, max(ibuf // (n * frame_bytes), 2) * n


def parse_pin(text: str | None):
    """Pin names as the port spells them: digits are numbers (GPIO 18), else names (P0, Y6)."""
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else text


def resolve(board: Board | None, mode: str, *, id=None, sck=None, ws=None, sd=None, mck=None) -> Pins:
    """The pins to use: the preset's, overridden by what was given. Raises ValueError naming
    what is missing when there is no preset."""
    base = board.pins(mode) if board else Pins(id, sck, ws, sd, mck)
    pins = replace(base, **{k: v for k, v in dict(id=id, sck=sck, ws=ws, sd=sd, mck=mck).items() if v is not None})
    missing = [k for k in ("id", "sck", "ws", "sd") if getattr(pins, k) is None]
    if missing:
        listed = [part for m in missing for part in (", ", ("pin", (None, m)))][1:]
        raise worded(ValueError, "no board preset fits this board: give ", ("board", None), " or all of ", *listed)
    return pins
