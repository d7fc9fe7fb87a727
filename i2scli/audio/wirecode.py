"""Lossless wire coder for DATA payloads, host side, numpy-vectorised.

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


def encode_many(payloads: bytes, frame_bytes: int, bits: int, channels: int) -> list[bytes]:
    """`payloads` cut into DATA payloads of frame_bytes (the last may be shorter), each coded
    exactly as `encode` codes it, in one vectorised pass over all of them: numpy's fixed cost
    per call, paid per small frame (244 bytes on a Pico), was most of the encoder's time."""
    n_full = len(payloads) // frame_bytes
    stride = bits // 8 * channels
    if frame_bytes % stride:
        raise ValueError("frame_bytes is not a whole number of audio frames")
    out = _encode_batch(payloads[: n_full * frame_bytes], n_full, frame_bytes, bits, channels) if n_full else []
    tail = payloads[n_full * frame_bytes:]
    if tail:
        out.append(encode(tail, bits, channels))
    return out


def _encode_batch(data: bytes, nf: int, frame_bytes: int, bits: int, ch: int) -> list[bytes]:
    n = frame_bytes // (bits // 8 * ch)  # samples per channel per frame
    raw_len = frame_bytes + 1
    if n == 0 or n > 0xFFFF:
        return [bytes([RAW]) + data[i * frame_bytes:(i + 1) * frame_bytes] for i in range(nf)]
    x = np.frombuffer(data, _dtype(bits)).reshape(nf, n, ch).astype(np.int64)
    # wasted bits per frame and channel
    acc = np.bitwise_or.reduce(x, axis=1)  # (nf, ch)
    low = acc & -acc
    shift = np.where(acc == 0, 0, np.log2(np.where(low == 0, 1, low)).astype(np.int64))
    w = bits - shift  # (nf, ch)
    v = x >> shift[:, None, :]
    half = (np.int64(1) << (w - 1))[:, None, :]
    mask = ((np.int64(1) << w) - 1)[:, None, :]
    # residuals of orders 0-2 (cascaded warm-up), wrapped modulo 2**w
    r0 = v
    r1 = v.copy()
    r1[:, 1:] = v[:, 1:] - v[:, :-1]
    r2 = r1.copy()
    r2[:, 2:] = r1[:, 2:] - r1[:, 1:-1]
    rs = np.stack([((r + half) & mask) - half for r in (r0, r1, r2)])  # (3, nf, n, ch)
    size = np.abs(rs[:, :, 1:, :]).sum(axis=2)  # (3, nf, ch)
    order = np.argmin(size, axis=0)  # the first smallest, as encode's strict comparison
    r = np.take_along_axis(rs, order[None, :, None, :], axis=0)[0]  # (nf, n, ch)
    u = (r << 1) ^ (r >> 63)
    # Rice parameter: the estimate from the mean, then the cheapest of its neighbours
    mean = (u[:, 1:, :] if n > 1 else u).mean(axis=1)
    est = mean * 0.69
    k0 = np.where(est >= 1, np.minimum(np.floor(np.log2(np.maximum(est, 1))), KMAX), 0).astype(np.int64)
    costs, ks = [], []
    for dk in (-1, 0, 1):
        k = np.clip(k0 + dk, 0, KMAX)
        q = u >> k[:, None, :]
        c = np.where(q >= ESC, ESC + w[:, None, :], q + 1 + k[:, None, :]).sum(axis=1)
        costs.append(c)
        ks.append(k)
    costs, ks = np.stack(costs), np.stack(ks)  # (3, nf, ch)
    pick = np.argmin(costs, axis=0)
    k = np.take_along_axis(ks, pick[None], axis=0)[0]
    cost = np.take_along_axis(costs, pick[None], axis=0)[0]
    head = HEADER + 2 * ch
    coded_len = head + (cost.sum(axis=1) + 7) // 8
    coded = coded_len < raw_len
    out: list[bytes] = [b""] * nf
    for i in np.flatnonzero(~coded):
        out[i] = bytes([RAW]) + data[i * frame_bytes:(i + 1) * frame_bytes]
    idx = np.flatnonzero(coded)
    if not idx.size:
        return out
    # the bitstreams of the coded frames, each byte-aligned, channel 0's codes then channel 1's
    uu = u[idx].transpose(0, 2, 1)  # (m, ch, n)
    rr = r[idx].transpose(0, 2, 1)
    kk = np.broadcast_to(k[idx][:, :, None], uu.shape)
    ww = np.broadcast_to(w[idx][:, :, None], uu.shape)
    q = uu >> kk
    esc = q >= ESC
    length = np.where(esc, ESC + ww, q + 1 + kk)
    frame_bits = length.reshape(idx.size, -1).sum(axis=1)
    frame_bytes_out = (frame_bits + 7) // 8
    start = np.cumsum(frame_bytes_out * 8) - frame_bytes_out * 8  # each frame's first bit
    within = np.cumsum(length.reshape(idx.size, -1), axis=1) - length.reshape(idx.size, -1)
    off = (start[:, None] + within).ravel()
    q, esc, kk, ww, uu, rr = (a.reshape(-1) for a in (q, esc, kk, ww, uu, rr))
    stream = np.zeros(int(frame_bytes_out.sum()) * 8, np.uint8)
    nrm = ~esc
    _put_bits(stream, off[nrm] + q[nrm], (np.int64(1) << kk[nrm]) | (uu[nrm] & ((np.int64(1) << kk[nrm]) - 1)),
              kk[nrm] + 1)
    _put_bits(stream, off[esc] + ESC, rr[esc] & ((np.int64(1) << ww[esc]) - 1), ww[esc])
    packed = np.packbits(stream).tobytes()
    byte_start = (start // 8).tolist()
    lengths = frame_bytes_out.tolist()
    # headers, all at once: mode, frames, the checksum's A and B, then order|shift<<2 and k per channel
    words = np.frombuffer(data, "<u2").reshape(nf, n, ch, bits // 16)[idx]
    words = words.transpose(0, 2, 1, 3).reshape(idx.size, -1).astype(np.int64)  # channel-planar
    weights = np.arange(words.shape[1], 0, -1, dtype=np.int64)
    a = words.sum(axis=1) % ADLER
    b = (words * weights).sum(axis=1) % ADLER
    hdr = np.zeros((idx.size, head), np.uint8)
    hdr[:, 0] = CODED
    hdr[:, 1], hdr[:, 2] = n & 0xFF, n >> 8
    hdr[:, 3], hdr[:, 4], hdr[:, 5], hdr[:, 6] = a & 0xFF, a >> 8, b & 0xFF, b >> 8
    hdr[:, HEADER::2] = order[idx] | (shift[idx] << 2)
    hdr[:, HEADER + 1::2] = k[idx]
    for j, i in enumerate(idx.tolist()):
        out[i] = hdr[j].tobytes() + packed[byte_start[j]:byte_start[j] + lengths[j]]
    return out


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
    whole = len(payload) // (bits // 8 * channels) * (bits // 8 * channels)
    coded = sum(len(c) for c in encode_many(payload[:whole], step, bits, channels))
    return whole / coded if coded else 1.0
