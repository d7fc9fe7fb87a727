"""The I2S ring (`ibuf`) a stream gets: sized by time, not bytes (docs/protocol.md, *The ring*).

The ring is what rides out the moments the host or the link stands still: it is sized to hold
a time of the stream's audio, so a 16 kHz mono cue and 48 kHz 32-bit stereo get the same
tolerance, and a short file is never given more ring than it has audio (the play-out at the end
waits for what is in the ring). What one `ibuf` holds depends on the port and the direction: the
rp2, stm32 and mimxrt TX ring holds `ibuf - 1` bytes of the stream's frames, their RX ring
8-byte frames whatever the format (a DMA half of 16 frames beyond the room left); esp32 keeps
DMA buffers of 256 frames (`ibuf // (256 x frame bytes)`, at least 2), RX ones of 8-byte frames.
"""

from __future__ import annotations

import math

from i2scli.audio.busformat import BusFormat
from i2scli.link.errors import BoardError

#: the least audio the ring holds by default: a loaded host's scheduling stalls (tens of ms, and
#: more on a busy CI machine), with the TX prime (half the ring) riding out half of it right
#: after the start
MIN_SECONDS = 0.2
#: the ring holds this many times the longest stall the link probe saw (docs/protocol.md)
STALLS = 4
#: ... but no more than this by default (latency of a live stream; a user asks for more)
MAX_SECONDS = 0.5
#: the ring takes at most this share of the RAM the board had free at HELLO (the TX prime holds
#: half a ring more, the link its buffers), never less than the old fixed ring; a recording's
#: ring never less than that either (an RX ring costs no time: it is read as it fills)
RAM_SHARE = 4
RAM_FLOOR = 16384
#: the least ring in bytes: room for the DMA's two halves and a payload behind them on every port
MIN_BYTES = 1024
RX_FRAME_BYTES = 8  # RX rings keep 32-bit stereo frames whatever the format (extmod/machine_i2s.c)
ESP32_DMA_FRAMES = 256  # ports/esp32/machine_i2s.c DMA_BUF_LEN_IN_I2S_FRAMES


def _ring_fb(bus: BusFormat, mode: str) -> int:
    return RX_FRAME_BYTES if mode == "rx" else bus.frame_bytes


def ring_bytes(seconds: float, bus: BusFormat, platform: str, modes: tuple[str, ...] = ("tx",)) -> int:
    """The least `ibuf` whose ring holds `seconds` of `bus` in each of `modes` on this port,
    in whole DMA halves (128 bytes), or whole DMA buffers on esp32."""
    frames = max(1, math.ceil(seconds * bus.rate))
    need = 0
    for mode in modes:
        fb = _ring_fb(bus, mode)
        if platform == "esp32":
            grain = ESP32_DMA_FRAMES * fb
            b = max(2, math.ceil(frames / ESP32_DMA_FRAMES)) * grain
        else:
            b = math.ceil((frames * fb + 1) / 128) * 128  # the ring keeps one byte free
        need = max(need, b)
    return need


def ring_seconds(ibuf: int, bus: BusFormat, platform: str, mode: str = "tx") -> float:
    """The audio of `bus` a ring of `ibuf` bytes holds on this port (one direction)."""
    fb = _ring_fb(bus, mode)
    if platform == "esp32":
        frames = max(ibuf // (ESP32_DMA_FRAMES * fb), 2) * ESP32_DMA_FRAMES
        if mode == "tx":
            frames = max(frames, ibuf // fb)
    else:
        frames = (ibuf - 1) // fb
    return frames / bus.rate


def default_seconds(stall: float | None) -> float:
    """The audio the ring holds by default: MIN_SECONDS, or STALLS times the longest stall the
    link probe saw when that is more, at most MAX_SECONDS."""
    return min(MAX_SECONDS, max(MIN_SECONDS, STALLS * (stall or 0.0)))


class LatencyRefused(BoardError):
    """A latency this board and link cannot hold; the message gives the numbers."""


def for_latency(latency: float, reserve: float, bus: BusFormat, platform: str, modes: tuple[str, ...], *,
                stall: float | None = None, mem_free: int | None = None) -> int:
    """The `ibuf` that makes `latency` in all behind `reserve` seconds the host holds ahead of
    the ring: refused (LatencyRefused) when the ring that leaves is shorter than the link's
    stalls need (STALLS times the longest the probe saw) or longer than the board's RAM allows."""
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    ring_s = latency - reserve
    held = f" after the {ms(reserve)} reserve" if reserve else ""
    need = STALLS * stall if stall else 0.0
    if ring_s <= 0 or ring_s < need:
        why = (f"{STALLS} x the longest stall the link probe saw ({ms(stall)}) = {ms(need)}" if need
               else "a ring of more than nothing")
        raise LatencyRefused(f"a latency of {ms(latency)} leaves the I2S ring {ms(max(ring_s, 0))}{held}, "
                             f"less than this link needs: {why}; the least latency is {ms(need + reserve)}")
    b = max(MIN_BYTES, ring_bytes(ring_s, bus, platform, modes))
    if mem_free:
        ram = max(RAM_FLOOR, mem_free // RAM_SHARE)
        if b > ram:
            most = ring_seconds(ram // 128 * 128, bus, platform, modes[0])
            raise LatencyRefused(f"a latency of {ms(latency)} needs an I2S ring of {b} bytes{held}, more than "
                                 f"a quarter of the {mem_free} bytes the board has free; the most is "
                                 f"{ms(most + reserve)}")
    return b


def choose(bus: BusFormat, platform: str, modes: tuple[str, ...], *, ibuf: int | None = None,
           buffer_time: float | None = None, stall: float | None = None, mem_free: int | None = None,
           stream_seconds: float | None = None, latency: float | None = None,
           reserve: float = 0.0) -> tuple[int, str]:
    """(ibuf, why): the user's `--ibuf` as given; `--buffer-time` as the bytes that hold it;
    else the default time (`default_seconds`), then no more than the board's RAM allows
    (`mem_free // RAM_SHARE`, at least RAM_FLOOR) nor than the stream itself holds, and at
    least MIN_BYTES (a recording's, RAM_FLOOR); `latency`: what `for_latency` says. `why` says
    which rule decided: ibuf, buffer-time, latency, time, ram or stream."""
    if ibuf:
        return ibuf, "ibuf"
    if buffer_time:
        return max(MIN_BYTES, ring_bytes(buffer_time, bus, platform, modes)), "buffer-time"
    if latency:
        return for_latency(latency, reserve, bus, platform, modes, stall=stall, mem_free=mem_free), "latency"
    b, why = ring_bytes(default_seconds(stall), bus, platform, modes), "time"
    if mem_free:
        ram = max(RAM_FLOOR, mem_free // RAM_SHARE)
        if b > ram:
            b, why = ram // 128 * 128, "ram"
    if stream_seconds is not None:
        whole = ring_bytes(stream_seconds, bus, platform, modes)
        if whole < b:
            b, why = whole, "stream"
    least = MIN_BYTES if "tx" in modes else RAM_FLOOR
    if b < least:
        b = least
    return b, why
