"""Lossless wire coder for DATA payloads (issue 11), host side, numpy-vectorised.

Format: docs/protocol.md, "Wire compression (coded DATA)". The board side is firmware/wirecode.py.
Per channel: wasted-bits shift, fixed predictor of order 0-2, residuals modulo 2**w (so
32-bit audio stays exact in 32-bit board words), Rice codes with an escape, MSB first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RAW = 0x00
CODED = 0x01
ESC = 16  # this many zero bits: an escape, the residual follows verbatim in w bits
KMAX = 24  # keeps (q << k) | low below 2**28 on the board
HEADER = 7  # mode, frames u16, check A u16, check B u16; then 2 bytes per channel
ADLER = 65521  # the checksum's modulus: the largest prime below 2**16


class WireCodeError(ValueError):
    """A coded payload that does not decode, or decodes to audio failing its check: link damage."""


@dataclass
class _Plan:
    order: int
    shift: int
    k: int
    width: int  # w = bits - shift: residuals live modulo 2**w
    r: np.ndarray  # wrapped residuals, int64
    u: np.ndarray  # zigzag of r, int64 >= 0
    cost: int  # bits


def _dtype(bits: int) -> str:
    if bits not in (16, 32):
        raise ValueError(f"bits must be 16 or 32, not {bits}")
    return "<i2" if bits == 16 else "<i4"


def _samples(payload: bytes, bits: int, channels: int) -> np.ndarray:
    x = np.frombuffer(payload, _dtype(bits))
    if x.size % channels:
        raise ValueError("payload is not a whole number of audio frames")
    return x.reshape(-1, channels).astype(np.int64)


def checksum(payload: bytes, bits: int, channels: int) -> tuple[int, int]:
    """Adler-style sums mod 65521 over the 16-bit LE words of the audio in channel-planar order
    (channel 0's samples, then channel 1's; low word first): A = sum w_j, B = sum of the running A.
    A prime modulus: a constant or power-of-two error, what a damaged warm-up leaves, still shows."""
    x = np.frombuffer(payload, "<u2").reshape(-1, channels, bits // 16)
    w = x.transpose(1, 0, 2).ravel().astype(np.int64)
    weights = np.arange(w.size, 0, -1, dtype=np.int64)  # word j (from 1) is in M - j + 1 running sums
    return int(w.sum() % ADLER), int((w * weights).sum() % ADLER)


def _wasted_bits(v: np.ndarray) -> int:
    """Trailing zero bits common to every sample (0 for an all-zero channel)."""
    acc = int(np.bitwise_or.reduce(v)) if v.size else 0
    return 0 if acc == 0 else (acc & -acc).bit_length() - 1


def _wrap(r: np.ndarray, w: int) -> np.ndarray:
    """Residuals modulo 2**w into [-2**(w-1), 2**(w-1)): the board's word arithmetic is exact mod 2**w."""
    half = 1 << (w - 1)
    return ((r + half) & ((1 << w) - 1)) - half


def _residuals(v: np.ndarray, order: int) -> np.ndarray:
    """Order-p differences; sample t < p uses order t (cascaded warm-up, nothing before the frame)."""
    r = v.copy()
    for p in range(1, order + 1):
        r[p:] = r[p:] - r[p - 1 : -1].copy()
    return r


def _cost(u: np.ndarray, k: int, w: int) -> int:
    q = u >> k
    esc = q >= ESC
    return int(np.where(esc, ESC + w, q + 1 + k).sum())


def _best_k(u: np.ndarray, w: int) -> tuple[int, int]:
    """FLAC-style estimate from the mean, then the exact cost of its neighbours. The mean skips
    sample 0 (the absolute level, the same in every order): it would inflate k for short frames."""
    mean = float(u[1:].mean()) if u.size > 1 else float(u.mean())
    k0 = min(int(np.log2(mean * 0.69)), KMAX) if mean * 0.69 >= 1 else 0
    best = None
    for k in range(max(0, k0 - 1), min(KMAX, k0 + 1) + 1):
        c = _cost(u, k, w)
        if best is None or c < best[1]:
            best = (k, c)
    return best


def _plan(x: np.ndarray, bits: int) -> _Plan:
    shift = _wasted_bits(x)
    w = bits - shift
    v = x >> shift
    best = None
    for order in range(3):
        r = _wrap(_residuals(v, order), w)
        size = np.abs(r[1:]).sum()
        if best is not None and size >= best[0]:
            continue  # the order with the smallest residuals wins (sample 0 is the same in all)
        best = (size, order, r)
    _, order, r = best
    u = (r << 1) ^ (r >> 63)
    k, cost = _best_k(u, w)
    return _Plan(order, shift, k, w, r, u, cost)


def _put_bits(out: np.ndarray, start: np.ndarray, value: np.ndarray, width: np.ndarray) -> None:
    """Write value (width bits each, MSB first) at bit positions start; one pass per bit column."""
    for j in range(int(width.max()) if width.size else 0):
        live = j < width
        bit = (value >> np.maximum(width - 1 - j, 0)) & 1
        sel = live & (bit == 1)
        out[start[sel] + j] = 1


def _pack(plans: list[_Plan]) -> bytes:
    u = np.concatenate([p.u for p in plans])
    r = np.concatenate([p.r for p in plans])
    k = np.concatenate([np.full(p.u.size, p.k, np.int64) for p in plans])
    w = np.concatenate([np.full(p.u.size, p.width, np.int64) for p in plans])
    q = u >> k
    esc = q >= ESC
    length = np.where(esc, ESC + w, q + 1 + k)
    off = np.cumsum(length) - length
    bits = np.zeros(int(length.sum()), np.uint8)
    n = ~esc
    # normal code: q zeros, then 1 and the k low bits of u, i.e. (1 << k) | low in k + 1 bits
    _put_bits(bits, off[n] + q[n], (np.int64(1) << k[n]) | (u[n] & ((np.int64(1) << k[n]) - 1)), k[n] + 1)
    _put_bits(bits, off[esc] + ESC, r[esc] & ((np.int64(1) << w[esc]) - 1), w[esc])
    return np.packbits(bits).tobytes()


def encode(payload: bytes, bits: int, channels: int) -> bytes:
    """One DATA payload (interleaved LE samples) -> its coded form, or the raw escape when not smaller."""
    x = _samples(payload, bits, channels)
    raw = bytes([RAW]) + bytes(payload)
    n = x.shape[0]
    if n == 0 or n > 0xFFFF:
        return raw
    plans = [_plan(x[:, c], bits) for c in range(channels)]
    head = HEADER + 2 * channels
    if head + (sum(p.cost for p in plans) + 7) // 8 >= len(raw):
        return raw
    a, b = checksum(payload, bits, channels)
    hdr = bytearray([CODED, n & 0xFF, n >> 8, a & 0xFF, a >> 8, b & 0xFF, b >> 8])
    for p in plans:
        hdr += bytes([p.order | p.shift << 2, p.k])
    return bytes(hdr) + _pack(plans)


# ---- decoding ----------------------------------------------------------------------------


def _chain(jump: np.ndarray, start: int, count: int) -> np.ndarray:
    """start, jump[start], jump[jump[start]], ... (count + 1 positions) by pointer doubling."""
    levels = [jump]
    while (1 << len(levels)) < count + 1:
        j = levels[-1]
        levels.append(j[j])
    pos = np.array([start], np.int64)
    for j in reversed(levels):
        pos = np.stack([pos, j[pos]], axis=1).ravel()
    return pos[: count + 1]


def _get_bits(bits: np.ndarray, start: np.ndarray, width: int) -> np.ndarray:
    val = np.zeros(start.size, np.int64)
    for j in range(width):
        val = (val << 1) | bits[start + j]
    return val


def _decode_channel(bits: np.ndarray, next_one: np.ndarray, pos: int, n: int, k: int, w: int):
    """Residuals of one channel starting at bit pos, and the bit position after them."""
    m = bits.size
    idx = np.arange(m + 2, dtype=np.int64)
    zeros = next_one - idx
    jump = np.where(zeros >= ESC, idx + ESC + w, next_one + 1 + k)
    jump = np.where(jump > m, m + 1, jump)  # m + 1: ran past the end (absorbing)
    jump[m:] = m + 1
    starts = _chain(jump, pos, n)
    end = int(starts[-1])
    if end > m:
        raise WireCodeError("coded payload ends inside a code")
    starts = starts[:-1]
    z = zeros[starts]
    esc = z >= ESC
    r = np.empty(n, np.int64)
    s = starts[~esc]
    u = (z[~esc] << k) | _get_bits(bits, s + z[~esc] + 1, k)
    r[~esc] = (u >> 1) ^ -(u & 1)
    r[esc] = _get_bits(bits, starts[esc] + ESC, w)
    return r, end


def _integrate(r: np.ndarray, order: int, w: int) -> np.ndarray:
    """Undo _residuals modulo 2**w (cumulative sums, cascaded warm-up)."""
    mask = (1 << w) - 1
    v = r & mask
    for p in range(order, 0, -1):
        v[p - 1 :] = np.cumsum(v[p - 1 :]) & mask
    return v


def decode(coded: bytes, bits: int, channels: int) -> bytes:
    """A coded DATA payload -> the original payload; WireCodeError when it is damaged."""
    dtype = _dtype(bits)
    if not coded:
        raise WireCodeError("empty coded payload")
    if coded[0] == RAW:
        return bytes(coded[1:])
    head = HEADER + 2 * channels
    if coded[0] != CODED or len(coded) < head:
        raise WireCodeError("bad coded header")
    n = coded[1] | coded[2] << 8
    want = (coded[3] | coded[4] << 8, coded[5] | coded[6] << 8)
    bitarr = np.unpackbits(np.frombuffer(coded, np.uint8, offset=head))
    m = bitarr.size
    # next_one[p]: first 1 at or after p (m when none); sized m + 2 for the sentinels
    next_one = np.full(m + 2, m, np.int64)
    next_one[:m] = np.minimum.accumulate(np.where(bitarr == 1, np.arange(m), m)[::-1])[::-1]
    out = np.empty((n, channels), np.int64)
    pos = 0
    for c in range(channels):
        ps, k = coded[HEADER + 2 * c], coded[HEADER + 2 * c + 1]
        order, shift = ps & 3, ps >> 2
        if n == 0 or order > 2 or shift >= bits or k > KMAX:
            raise WireCodeError("bad channel parameters")
        w = bits - shift
        r, pos = _decode_channel(bitarr, next_one, pos, n, k, w)
        out[:, c] = _integrate(r, order, w) << shift
    if m - pos >= 8 or bitarr[pos:].any():
        raise WireCodeError("trailing bits after the last code")
    payload = (out & ((1 << bits) - 1)).astype(np.uint64).astype(dtype.replace("i", "u")).tobytes()
    if checksum(payload, bits, channels) != want:
        raise WireCodeError("decoded audio fails its checksum")
    return payload


def estimate_ratio(payload: bytes, bits: int, channels: int, frame_bytes: int = 4096) -> float:
    """Raw bytes / coded bytes for a block of samples cut into DATA payloads of frame_bytes."""
    step = max(frame_bytes // (bits // 8 * channels), 1) * (bits // 8 * channels)
    raw = coded = 0
    for i in range(0, len(payload), step):
        chunk = payload[i : i + step]
        raw += len(chunk)
        coded += len(encode(chunk, bits, channels))
    return raw / coded if coded else 1.0
