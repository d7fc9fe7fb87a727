"""The virtual SD line's far ends: what the microphone sends (RX sources) and what the DAC
hears (the TX capture).

Wire format is the I2S buffer format: little-endian samples of `bits` bits, left then right.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import soundfile as sf

RAMP_24BIT_MASK = (1 << 24) - 1


def ramp_samples(start_frame: int, frames: int, bits: int, channels: int) -> np.ndarray:
    """The `ramp` counting pattern: slot n (= 2*frame + channel, left first) carries n.

    16-bit slots hold n mod 2**16; 32-bit slots hold (n mod 2**24) << 8, as a 24-bit
    microphone in a 32-bit slot would, so the pattern survives PCM_24 files. MONO
    buses see the left slot. Returns int16 or int32, shape (frames, channels).
    """
    n = 2 * (start_frame + np.arange(frames, dtype=np.int64))
    slots = np.stack([n, n + 1], axis=1)[:, :channels]
    if bits == 16:
        return (slots & 0xFFFF).astype(np.uint16).view(np.int16)
    return ((slots & RAMP_24BIT_MASK) << 8).astype(np.uint32).view(np.int32)


class Source:
    """A microphone: frames in order, one per RX bus frame clocked."""

    def frames(self, start: int, count: int, rate: int, bits: int, channels: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Silence(Source):
    def frames(self, start, count, rate, bits, channels):
        return np.zeros((count, channels), np.int16 if bits == 16 else np.int32)


class Ramp(Source):
    def frames(self, start, count, rate, bits, channels):
        return ramp_samples(start, count, bits, channels)


class Sine(Source):
    def __init__(self, freq: float, dbfs: float = -6.0):
        self.freq = freq
        self.amplitude = 10 ** (dbfs / 20)

    def frames(self, start, count, rate, bits, channels):
        k = start + np.arange(count, dtype=np.float64)
        x = self.amplitude * np.sin(2 * math.pi * self.freq * k / rate)
        full = 2 ** (bits - 1) - 1
        s = np.round(x * full).astype(np.int16 if bits == 16 else np.int32)
        return np.repeat(s[:, None], channels, axis=1)


class FileSource(Source):
    """Samples of an audio file, as they are (no resampling); zeros after its end."""

    def __init__(self, path: str):
        self.path = path
        self._file = sf.SoundFile(path)

    def frames(self, start, count, rate, bits, channels):
        out = np.zeros((count, channels), np.int32)
        if start < self._file.frames:
            self._file.seek(start)
            data = self._file.read(count, dtype="int32", always_2d=True)
            if data.shape[1] == 1:
                data = np.repeat(data, 2, axis=1)
            out[: len(data)] = data[:, :channels]
        if bits == 16:
            return (out >> 16).astype(np.int16)
        return out

    def close(self):
        self._file.close()


def parse_source(spec: str | None) -> Source:
    """`silence`, `ramp`, `sine:FREQ[:DBFS]` or an audio file path."""
    if not spec or spec == "silence":
        return Silence()
    if spec == "ramp":
        return Ramp()
    m = re.fullmatch(r"sine:([0-9.]+)(?::(-?[0-9.]+))?", spec)
    if m:
        return Sine(float(m.group(1)), float(m.group(2)) if m.group(2) else -6.0)
    if spec.startswith("sine"):
        raise ValueError(f"invalid source {spec!r} (use sine:FREQ[:DBFS], e.g. sine:1000:-6)")
    if not Path(spec).is_file():
        raise ValueError(f"RX source {spec!r} is not silence, ramp, sine:FREQ[:DBFS] or an audio file")
    try:
        return FileSource(spec)
    except sf.LibsndfileError as e:
        raise ValueError(f"RX source {spec!r} is not a readable audio file: {e}") from None


def wire_dtype(bits: int) -> np.dtype:
    return np.dtype("<i2") if bits == 16 else np.dtype("<i4")


class Capture:
    """TX samples exactly as they stand on SD, written to a WAV as stereo slots.

    The file takes the format of the first TX session (PCM_16 for bits=16, PCM_32 for 32);
    later sessions with other bits are converted (16 -> 32 left-justified) and noted.
    """

    def __init__(self, path: str):
        self.path = path
        self._file: sf.SoundFile | None = None
        self.bits: int | None = None
        self.rate: int | None = None
        self.frames = 0

    def write(self, data: bytes | np.ndarray, bits: int, channels: int, rate: int) -> None:
        samples = np.frombuffer(data, wire_dtype(bits)) if isinstance(data, (bytes, bytearray, memoryview)) else data
        samples = samples.reshape(-1, channels)
        if channels == 1:  # MONO TX sends the sample on both slots
            samples = np.repeat(samples, 2, axis=1)
        if self._file is None:
            self.bits, self.rate = bits, rate
            self._file = sf.SoundFile(
                self.path, "w", samplerate=rate, channels=2,
                subtype="PCM_16" if bits == 16 else "PCM_32", format="WAV",
            )
        if bits != self.bits:
            samples = samples.astype(np.int32) << 16 if self.bits == 32 else (samples >> 16).astype(np.int16)
        self._file.buffer_write(np.ascontiguousarray(samples).tobytes(),
                                dtype="int16" if self.bits == 16 else "int32")
        self.frames += len(samples)

    def zeros(self, frames: int, bits: int, rate: int) -> None:
        chunk = 65536
        while frames > 0:
            n = min(frames, chunk)
            self.write(np.zeros((n, 2), wire_dtype(bits)), bits, 2, rate)
            frames -= n

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        elif self.path:
            # No TX session ran: still leave a valid (empty) file where one was asked for.
            sf.SoundFile(self.path, "w", samplerate=48000, channels=2, subtype="PCM_16").close()
