"""Wire bytes as sample arrays, and what `record --slot/--shift` keeps of them."""

from __future__ import annotations

import numpy as np

from i2scli.audio.busformat import BusFormat


def wire_to_array(data: bytes | bytearray | memoryview, bus: BusFormat) -> np.ndarray:
    """Wire bytes as an array of shape (frames, channels) with dtype `bus.dtype` (a read-only view).

    Raises ValueError if `data` is not a whole number of frames.
    """
    if len(data) % bus.frame_bytes:
        raise ValueError(f"{len(data)} bytes is not a whole number of {bus.frame_bytes}-byte frames")
    return np.frombuffer(data, bus.dtype).reshape(-1, bus.channels)


def slot_keeper(bus: BusFormat, slot: str | None, shift: int = 0):
    """What `record --slot/--shift` keeps of each block of bus samples (frames, channels):
    one slot (a mono microphone on `slot` of a stereo bus) and/or every sample shifted
    `shift` bits as MicroPython's I2S.shift does it (left: the high bits fall off; right:
    arithmetic, the sign kept)."""
    col = {"left": 0, "right": 1, None: None}[slot]

    def keep(x: np.ndarray) -> np.ndarray:
        if col is not None:
            x = x[:, col:col + 1]
        if shift > 0:
            mask = (1 << bus.bits) - 1
            wide = (x.astype(np.int64) << shift) & mask
            x = np.where(wide >= 1 << (bus.bits - 1), wide - (1 << bus.bits), wide).astype(bus.dtype)
        elif shift < 0:
            x = x >> -shift
        return np.ascontiguousarray(x)

    return keep
