"""File samples to the I2S wire format, exactly, block by block (memory stays flat whatever the file length).

The wire format (what the board's I2S buffers hold) is described by a `BusFormat`:
little-endian signed samples of 16 or 32 bits, frames interleaved left before right.
24-bit audio travels left-justified in 32-bit slots (low byte 0). A MONO RX bus keeps
the left slot; a MONO TX bus sends each sample on both slots.

Playing (file -> wire), see `play_blocks`:

* Integer PCM files (8/16/24/32-bit, signed or unsigned, WAV/FLAC/...) are read as
  left-justified int32 (libsndfile scales every integer depth to the top of 32 bits:
  8-bit unsigned ``u`` becomes ``(u - 128) << 24``, 16-bit ``s`` becomes ``s << 16``,
  24-bit ``s`` becomes ``s << 8``).

  - to a 32-bit bus: that int32 as is (24-bit audio lands left-justified, low byte 0);
  - to a 16-bit bus: the top 16 bits (``x >> 16``, an arithmetic shift). Exact for 8- and
    16-bit files; for deeper files the low bits are truncated (rounded towards -inf),
    not dithered.

* Float files (FLOAT/DOUBLE subtypes) and lossy codecs (Vorbis, Opus, MP3...) are read
  as float64, scaled by 2**31 (32-bit bus) or 2**15 (16-bit bus), rounded half to even
  and clipped to the signed range; clipped samples are counted in `ConvertStats.clipped`.
  Non-finite samples (NaN, +inf, -inf) play as silence (0), counted in
  `ConvertStats.nonfinite`: they are not audio, and full scale would be a loud click.
* With a gain (``gain_db != 0``) or a resampler (bus rate != file rate), integer files
  take the float path too (``x / 2**31``, exact), then gain, then the same quantization.
* Channels: a mono file on a stereo bus is duplicated on both slots; a stereo file on a
  mono bus keeps its left channel (like MONO RX keeps the left slot). Files with more than
  two channels need a channels map (``--channels-map 0,1``), which selects and reorders
  file channels; a map can also pick the right channel of a stereo file (``1``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from i2scli.audio.busformat import BusFormat
from i2scli.audio.levels import _json_db, to_dbfs
from i2scli.audio.source import Input
from i2scli.audio.wire import wire_to_array


@dataclass
class ConvertStats:
    """What `play_blocks` (or `tone_blocks`) produced; filled in as blocks are yielded.

    `frames`: wire frames yielded; `input_frames`: file frames read; `clipped`: wire samples
    clipped (float, gain or resampler paths; a mono source duplicated on both slots counts
    twice); `nonfinite`: file samples that were NaN or ±inf and played as silence (only
    the channels played count, each once); `peak`: largest magnitude per wire channel, in
    wire units; `bits`: the bus bits.
    """

    frames: int = 0
    input_frames: int = 0
    clipped: int = 0
    nonfinite: int = 0
    peak: list[int] = field(default_factory=list)
    bits: int = 0

    def _add(self, wire: np.ndarray, clipped: int, bits: int) -> None:
        self.bits = bits
        self.frames += len(wire)
        self.clipped += clipped
        if len(wire):
            block = np.abs(wire.astype(np.int64)).max(axis=0).tolist()
            self.peak = [max(a, b) for a, b in zip(self.peak, block)] if self.peak else block

    def peak_dbfs(self) -> list[float]:
        """Peak per channel in dBFS (-inf for silence)."""
        return [to_dbfs(p, 1 << (self.bits - 1)) for p in self.peak] if self.bits else []

    def summary(self) -> dict:
        """JSON-able: frames, input_frames, clipped, nonfinite, peak_dbfs (None for silence)."""
        return {
            "frames": self.frames,
            "input_frames": self.input_frames,
            "clipped": self.clipped,
            "nonfinite": self.nonfinite,
            "peak_dbfs": [_json_db(p) for p in self.peak_dbfs()],
        }


def _quantize(x: np.ndarray, bits: int, scale: float) -> tuple[np.ndarray, int]:
    """float64 samples × scale, rounded half to even, clipped to `bits`; returns (ints, clipped count).

    `x` must be finite (see `_silence_nonfinite`); a huge finite value (a DOUBLE file can hold
    1e300) overflows to ±inf here, which clips to full scale like any value past it.
    """
    with np.errstate(over="ignore"):
        y = np.rint(x * scale)
    hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    over = (y > hi) | (y < lo)
    clipped = int(np.count_nonzero(over))
    if clipped:
        np.clip(y, lo, hi, out=y)
    return y.astype(np.int16 if bits == 16 else np.int32), clipped


def _silence_nonfinite(x: np.ndarray, stats: ConvertStats) -> np.ndarray:
    """`x` with NaN and ±inf replaced by 0 (silence), counted in `stats.nonfinite`.

    One `isfinite(...).all()` per block when everything is finite (the usual case); the
    replacement is vectorised. Done before gain and resampling, which would otherwise
    spread a NaN over its neighbours.
    """
    finite = np.isfinite(x)
    if finite.all():
        return x
    stats.nonfinite += x.size - int(np.count_nonzero(finite))
    return np.where(finite, x, 0.0)


def _int32_to_wire(x: np.ndarray, bits: int) -> np.ndarray:
    """Left-justified int32 samples to wire ints: as is (32) or the top 16 bits (16)."""
    return x if bits == 32 else (x >> 16).astype(np.int16)


def _to_wire_bytes(ints: np.ndarray, bus: BusFormat) -> bytes:
    if ints.shape[1] < bus.channels:  # mono source on a stereo bus: same sample on both slots
        ints = np.repeat(ints, bus.channels, axis=1)
    return np.ascontiguousarray(ints, dtype=bus.dtype).tobytes()


def _then_held(blocks: Iterator[np.ndarray], live) -> Iterator[np.ndarray]:
    """The source's blocks, then what a live match still held back when it ended."""
    yield from blocks
    rest = live.rest() if live is not None else None
    if rest is not None and len(rest):
        yield rest


def play_blocks(
    inp: Input,
    bus: BusFormat,
    *,
    gain_db: float = 0.0,
    start_frame: int = 0,
    max_frames: int | None = None,
    block_frames: int = 4096,
    stats: ConvertStats | None = None,
    live=None,
) -> Iterator[bytes]:
    """Yield the file's audio in the wire format of `bus`, block by block (whole frames).
    `live`: a live.LiveMatch, which sees each block taken and matches the source's clock to the
    board's (i2scli/live/).

    `start_frame` and `max_frames` count file frames (at the file's rate). Blocks hold up to
    about `block_frames` frames (resampling changes the count); their concatenation does not
    depend on `block_frames`. The exact conversion rules are in the module docstring.
    When `bus.rate` differs from the file's rate, a streaming soxr resampler (HQ) converts it.
    `stats`, if given, is updated as blocks are yielded. Raises AudioError on read errors.
    """
    if start_frame < 0 or block_frames <= 0 or (max_frames is not None and max_frames < 0):
        raise ValueError("start_frame and max_frames must be >= 0, block_frames > 0")
    stats = stats if stats is not None else ConvertStats()
    stats.bits = bus.bits
    count = None if inp.frames is None else max(0, inp.frames - start_frame)
    if max_frames is not None:
        count = max_frames if count is None else min(count, max_frames)
    src_channels = min(inp.channels, bus.channels)  # a stereo source on a mono bus keeps the left
    resampler = None
    if bus.rate != inp.rate:
        import soxr

        resampler = soxr.ResampleStream(inp.rate, bus.rate, src_channels, dtype="float64", quality="HQ")
    exact = inp.integer and gain_db == 0 and resampler is None
    scale = float(1 << (bus.bits - 1)) * 10 ** (gain_db / 20)
    for block in _then_held(inp._blocks(start_frame, count, block_frames, "int32" if inp.integer else "float64"),
                            live):
        if live is not None:  # live: the reserve sampled (and, at its start, what piled up skipped)
            block = live.take(block)
        stats.input_frames += len(block)
        block = block[:, :src_channels]
        if exact and (live is None or not live.engaged):
            ints, clipped = _int32_to_wire(block, bus.bits), 0
            if live is not None:
                live.passed(block / 2**31)  # the resampler, once engaged, continues from these
        else:
            x = block / 2**31 if inp.integer else _silence_nonfinite(block, stats)
            if resampler is not None:
                x = resampler.resample_chunk(np.ascontiguousarray(x))
                if len(x) == 0:
                    yield b""  # nothing out yet (a stream waits for its source): the caller tends its link
                    continue
            if live is not None:
                x = live.resample(x)  # as it is until the clocks need matching
            ints, clipped = _quantize(x, bus.bits, scale)
        yield from _emit(ints, clipped, bus, stats)
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros((0, src_channels)), last=True)
        if len(tail):
            ints, clipped = _quantize(tail if live is None else live.resample(tail), bus.bits, scale)
            yield from _emit(ints, clipped, bus, stats)
    tail = live.flush() if live is not None else None
    if tail is not None and len(tail):
        ints, clipped = _quantize(tail, bus.bits, scale)
        yield from _emit(ints, clipped, bus, stats)


def _emit(ints: np.ndarray, clipped: int, bus: BusFormat, stats: ConvertStats) -> Iterator[bytes]:
    dup = bus.channels // ints.shape[1]
    data = _to_wire_bytes(ints, bus)
    stats._add(wire_to_array(data, bus), clipped * dup, bus.bits)
    yield data


def tone_blocks(
    freq: float,
    bus: BusFormat,
    *,
    frames: int,
    dbfs: float = -6.0,
    block_frames: int = 4096,
    stats: ConvertStats | None = None,
) -> Iterator[bytes]:
    """A sine of `freq` Hz at `dbfs` (peak, re full scale) on all channels, `frames` frames long.

    Sample k is ``rint(A·sin(2π·freq·k/rate)·(2**(bits-1) - 1))`` (as the virtual board's
    ``sine:`` source), with the phase computed exactly from k (freq to 1 mHz), so blocks
    are phase-continuous and the result does not depend on `block_frames`.
    """
    if frames < 0 or block_frames <= 0:
        raise ValueError("frames must be >= 0, block_frames > 0")
    stats = stats if stats is not None else ConvertStats()
    step = Fraction(freq).limit_denominator(1000) / bus.rate  # cycles per frame
    period, num = step.denominator, step.numerator % step.denominator
    amplitude = 10 ** (dbfs / 20) * ((1 << (bus.bits - 1)) - 1)
    for start in range(0, frames, block_frames):
        k = np.arange(start, min(frames, start + block_frames), dtype=np.int64)
        phase = ((k % period) * num) % period  # exact: period * num < 2**63 for audio rates
        x = np.sin(2 * np.pi * (phase / period))
        ints, clipped = _quantize(x[:, None], bus.bits, amplitude)
        yield from _emit(ints, clipped, bus, stats)
