"""The sample format on the I2S wire, without numpy: `ui`, `info` and the help text use it
without paying for numpy's import; `audio` re-exports it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from i2scli.errors import AudioError

if TYPE_CHECKING:
    import numpy as np


def describe_format(rate: int | None, bits: int | None, channels: int | None) -> str:
    """E.g. ``48000 Hz 32-bit stereo``; parts that are None are left out."""
    parts = []
    if rate is not None:
        parts.append(f"{rate} Hz")
    if bits is not None:
        parts.append(f"{bits}-bit")
    if channels is not None:
        parts.append({1: "mono", 2: "stereo"}.get(channels, f"{channels}-channel"))
    return " ".join(parts)


@dataclass(frozen=True)
class BusFormat:
    """The sample format on the I2S wire: `rate` Hz, `bits` (16 or 32) per slot, 1 or 2 `channels`.

    Samples are little-endian signed integers, frames interleaved left before right.
    """

    rate: int
    bits: int
    channels: int

    def __post_init__(self) -> None:
        if self.bits not in (16, 32):
            raise AudioError(f"I2S bits must be 16 or 32, not {self.bits} (24-bit audio travels in 32-bit slots)")
        if self.channels not in (1, 2):
            raise AudioError(f"I2S carries 1 (mono) or 2 (stereo) channels, not {self.channels}")
        if not isinstance(self.rate, int) or self.rate <= 0:
            raise AudioError(f"invalid sample rate {self.rate!r}")

    @property
    def sample_bytes(self) -> int:
        """Bytes per sample (per slot)."""
        return self.bits // 8

    @property
    def frame_bytes(self) -> int:
        """Bytes per frame: one sample per channel."""
        return self.sample_bytes * self.channels

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.frame_bytes

    @property
    def dtype(self) -> np.dtype:
        """numpy dtype of one wire sample: ``<i2`` or ``<i4``."""
        import numpy as np

        return np.dtype("<i2") if self.bits == 16 else np.dtype("<i4")

    @property
    def full_scale(self) -> int:
        """2**(bits-1): the magnitude that 0 dBFS refers to."""
        return 1 << (self.bits - 1)

    def describe(self) -> str:
        """E.g. ``48000 Hz 32-bit stereo``."""
        return describe_format(self.rate, self.bits, self.channels)
