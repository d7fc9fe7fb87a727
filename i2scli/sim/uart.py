"""What a UART receiver makes of bytes sent at another baud rate (see docs/sim.md, *Garbling*).

Each byte is sent as one 8N1 frame (start 0, 8 data bits LSB first, stop 1) on an otherwise idle
line, and received by a UART that waits for a falling edge, checks the start bit at its middle,
samples the 8 data bits and the stop bit at the middles of its own bit times, then waits for the
next falling edge. Bit-level and deterministic: within about ±5 % the receiver samples every bit
inside the right sender bit and the byte comes through unchanged (the tolerance real UARTs have);
further apart, bytes change, some vanish (no start bit seen), and a slow sender's frame can read
as two or three bytes at a fast receiver.
"""

from __future__ import annotations

import functools


def _frame_level(bits: tuple[int, ...], t: float) -> int:
    k = int(t // 1) if t >= 0 else -1
    return bits[k] if 0 <= k < len(bits) else 1


@functools.lru_cache(maxsize=64)
def garble_table(tx_baud: int, rx_baud: int) -> tuple[bytes, ...] | None:
    """Per sent byte, the bytes the receiver gets; None when every byte arrives unchanged."""
    q = tx_baud / rx_baud  # one receiver bit time, in sender bit times
    table = []
    for byte in range(256):
        bits = (0, *((byte >> i) & 1 for i in range(8)), 1)
        edges = [k for k in range(1, 10) if bits[k - 1] == 1 and bits[k] == 0]
        out = bytearray()
        t = 0.0  # the falling edge of the start bit
        while t is not None:
            ready = t + q / 2  # a start bit that is high at its middle was a glitch
            if _frame_level(bits, ready) == 0:
                out.append(sum(_frame_level(bits, t + q * (i + 1.5)) << i for i in range(8)))
                ready = t + q * 9.5  # the stop bit's middle (a low one is a framing error)
            t = next((k for k in edges if k > ready), None)
        table.append(bytes(out))
    if all(table[b] == bytes([b]) for b in range(256)):
        return None
    return tuple(table)


def garble(data: bytes, tx_baud: int | None, rx_baud: int | None) -> bytes:
    """`data` sent at tx_baud as received at rx_baud (None: the sender's line is dead, nothing
    arrives but noise — every byte reads as 0x00, a break)."""
    if tx_baud is None or rx_baud is None:
        return bytes(len(data))
    table = garble_table(tx_baud, rx_baud)
    if table is None:
        return data
    return b"".join(table[b] for b in data)
