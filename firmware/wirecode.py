# Lossless wire coder for DATA payloads, board side (issue 11). Format: docs/protocol.md,
# "Wire compression (coded DATA)"; the host side is i2scli/wirecode.py.
# Viper only, integer only, no allocation per call: every value stays exact in 32-bit machine
# words (residuals are taken modulo 2**w, which word arithmetic wraps for free; Rice values
# stay below 2**28; the bit accumulators below 2**31). Boards without viper get raw frames.
# Viper code: mpy-cross compiles it only for a target architecture (`-march=armv6m`, `armv7m`,
# `xtensawin`, `x64`, ...; .ci/run does five), as for any native code. `i2s install` passes the
# board's own (from sys.implementation._mpy).
import micropython
from micropython import const

RAW = const(0)
CODED = const(1)
ESC = const(16)  # ESC zero bits: escape, the residual follows in w bits
KMAX = const(24)
HEADER = const(7)
ADLER = const(65521)  # checksum modulus; sums are reduced every 64 samples, before 2**31

E_MODE = const(-1)  # first byte neither RAW nor CODED
E_HEADER = const(-2)  # truncated header or a channel parameter out of range
E_SPACE = const(-3)  # dst too small, or a payload that is not whole audio frames
E_DATA = const(-4)  # the bitstream ends inside a code
E_TRAIL = const(-5)  # bytes or non-zero padding after the last code
E_CHECK = const(-6)  # decoded audio fails the header's checksum


class _Coder:
    """What both directions know of a stream: its slot width and channel count."""

    def __init__(self, bits, channels):
        if bits not in (16, 32) or not 1 <= channels <= 8:
            raise ValueError("bits 16/32, channels 1-8")
        self.bits = bits
        self.channels = channels


class Decoder(_Coder):
    """decode(src, n_src, dst) -> bytes written to dst, or a negative E_* code."""

    @micropython.viper
    def decode(self, src, n_src: int, dst) -> int:
        s = ptr8(src)
        d = ptr8(dst)
        bits = int(self.bits)
        ch = int(self.channels)
        cap = int(len(dst))
        bps = bits >> 3
        stride = ch * bps
        if n_src < 1:
            return E_MODE
        mode = int(s[0])
        if mode == RAW:
            n = n_src - 1
            if n > cap or n % stride:
                return E_SPACE
            i = 0
            while i < n:
                d[i] = s[i + 1]
                i += 1
            return n
        if mode != CODED:
            return E_MODE
        head = HEADER + 2 * ch
        if n_src < head:
            return E_HEADER
        nfr = int(s[1]) | (int(s[2]) << 8)
        out = nfr * stride
        if nfr == 0 or out > cap:
            return E_SPACE
        one = 1
        pos = head
        cnt = 64  # samples until the checksum sums are reduced
        acc = 0  # bit accumulator: the next bit is bit nb-1; bits above nb are stale
        nb = 0
        sa = 0
        sb = 0
        c = 0
        while c < ch:
            ps = int(s[HEADER + 2 * c])
            k = int(s[HEADER + 1 + 2 * c])
            order = ps & 3
            sh = ps >> 2
            if order > 2 or sh >= bits or k > KMAX:
                return E_HEADER
            w = bits - sh
            kmask = (one << k) - 1
            v1 = 0
            v2 = 0
            o = c * bps
            t = 0
            while t < nfr:
                q = 0
                while q < ESC:  # unary: q zero bits, then a one
                    if nb == 0:
                        if pos >= n_src:
                            return E_DATA
                        acc = (acc << 8) | s[pos]
                        pos += 1
                        nb = 8
                    nb -= 1
                    if (acc >> nb) & 1:
                        break
                    q += 1
                if q < ESC:
                    while nb < k:
                        if pos >= n_src:
                            return E_DATA
                        acc = (acc << 8) | s[pos]
                        pos += 1
                        nb += 8
                    nb -= k
                    u = (q << k) | ((acc >> nb) & kmask)
                    r = (u >> 1) ^ (0 - (u & 1))
                else:  # escape: w bits of the residual mod 2**w, in at most two reads of <= 16
                    r = 0
                    left = w
                    while left > 0:
                        take = left if left <= 16 else left - 16
                        while nb < take:
                            if pos >= n_src:
                                return E_DATA
                            acc = (acc << 8) | s[pos]
                            pos += 1
                            nb += 8
                        nb -= take
                        r = (r << take) | ((acc >> nb) & ((one << take) - 1))
                        left -= take
                if t >= 2 and order == 2:
                    v = v1 + v1 - v2 + r
                elif t >= 1 and order >= 1:
                    v = v1 + r
                else:
                    v = r
                v2 = v1
                v1 = v
                x = v << sh
                d[o] = x
                d[o + 1] = x >> 8
                sa += x & 0xFFFF
                sb += sa
                if bps == 4:
                    d[o + 2] = x >> 16
                    d[o + 3] = x >> 24
                    sa += (x >> 16) & 0xFFFF
                    sb += sa
                cnt -= 1
                if cnt == 0:
                    sa %= ADLER
                    sb %= ADLER
                    cnt = 64
                o += stride
                t += 1
            c += 1
        if pos != n_src or nb >= 8 or (acc & ((one << nb) - 1)):
            return E_TRAIL
        if sa % ADLER != (int(s[3]) | (int(s[4]) << 8)) or sb % ADLER != (int(s[5]) | (int(s[6]) << 8)):
            return E_CHECK
        return out


class Encoder(_Coder):
    """encode(src, n, dst) -> bytes written to dst (coded, or RAW + the n bytes when coding does
    not save at least a few bytes), or E_SPACE. dst must hold n + 1 bytes."""

    @micropython.viper
    def encode(self, src, n: int, dst) -> int:
        s = ptr8(src)
        d = ptr8(dst)
        bits = int(self.bits)
        ch = int(self.channels)
        bps = bits >> 3
        stride = ch * bps
        if int(len(dst)) < n + 1 or n % stride:
            return E_SPACE
        nfr = n // stride
        head = HEADER + 2 * ch
        one = 1
        if nfr == 0 or nfr > 0xFFFF or n <= head + 8:
            return int(self.raw(src, n, dst))
        sa = 0
        sb = 0
        cnt = 64
        c = 0
        while c < ch:
            # pass 1: checksum and the bits every sample has zero (wasted bits)
            ored = 0
            o = c * bps
            t = 0
            while t < nfr:
                lo = int(s[o]) | (int(s[o + 1]) << 8)
                sa += lo
                sb += sa
                ored |= lo
                if bps == 4:
                    hi = int(s[o + 2]) | (int(s[o + 3]) << 8)
                    sa += hi
                    sb += sa
                    ored |= hi << 16
                cnt -= 1
                if cnt == 0:
                    sa %= ADLER
                    sb %= ADLER
                    cnt = 64
                o += stride
                t += 1
            sh = 0
            if ored:
                while not ((ored >> sh) & 1):
                    sh += 1
            w = bits - sh
            half = one << (w - 1)
            wmask = (half << 1) - 1  # all ones at w = 32 on a 32-bit board: fine, mod 2**32 anyway
            # pass 2: sums of |residual| for orders 0-2, exact in two words each (hi counts 2**15)
            h0 = 0
            l0 = 0
            h1 = 0
            l1 = 0
            h2 = 0
            l2 = 0
            p1 = 0
            p2 = 0
            o = c * bps
            t = 0
            while t < nfr:
                if bps == 4:
                    b3 = int(s[o + 3])
                    if b3 & 0x80:
                        b3 -= 256
                    x = int(s[o]) | (int(s[o + 1]) << 8) | (int(s[o + 2]) << 16) | (b3 << 24)
                else:
                    b1 = int(s[o + 1])
                    if b1 & 0x80:
                        b1 -= 256
                    x = int(s[o]) | (b1 << 8)
                v = x >> sh
                if t >= 1:  # sample 0 is the absolute level in every order: it would only inflate k
                    a = v if v >= 0 else -1 - v
                    h0 += a >> 15
                    l0 += a & 0x7FFF
                    r = (((v - p1) + half) & wmask) - half
                    a = r if r >= 0 else -1 - r
                    h1 += a >> 15
                    l1 += a & 0x7FFF
                    if t >= 2:
                        r = (((v - p1 - p1 + p2) + half) & wmask) - half
                        a = r if r >= 0 else -1 - r
                    h2 += a >> 15
                    l2 += a & 0x7FFF
                p2 = p1
                p1 = v
                o += stride
                t += 1
            h0 += l0 >> 15
            l0 &= 0x7FFF
            h1 += l1 >> 15
            l1 &= 0x7FFF
            h2 += l2 >> 15
            l2 &= 0x7FFF
            order = 0
            bh = h0
            bl = l0
            if h1 < bh or (h1 == bh and l1 < bl):
                order = 1
                bh = h1
                bl = l1
            if h2 < bh or (h2 == bh and l2 < bl):
                order = 2
                bh = h2
                bl = l2
            # Rice k ~ log2(mean |u| * ln 2) ~ log2(1.375 * mean |r|): largest k with nfr << k <= that
            base = 0
            if bh < 16384:
                tot = (bh << 15) | bl
            else:
                tot = bh
                base = 15
            tot = tot + (tot >> 1) - (tot >> 3)
            k = 0
            cnt1 = nfr - 1 if nfr > 1 else 1
            while k < KMAX and (tot >> (k + 1)) >= cnt1:
                k += 1
            k += base
            if k > KMAX:
                k = KMAX
            d[HEADER + 2 * c] = order | (sh << 2)
            d[HEADER + 1 + 2 * c] = k
            c += 1
        sa %= ADLER
        sb %= ADLER
        d[0] = CODED
        d[1] = nfr
        d[2] = nfr >> 8
        d[3] = sa
        d[4] = sa >> 8
        d[5] = sb
        d[6] = sb >> 8
        # pass 3: the bitstream; give up for RAW as soon as it cannot end up smaller
        limit = n - 8  # a code writes at most 7 bytes, the padding 1: coded stays <= n bytes
        p = head
        acc = 0  # bit accumulator: nb pending bits in its low end, stale bits above
        nb = 0
        c = 0
        while c < ch:
            ps = int(d[HEADER + 2 * c])
            k = int(d[HEADER + 1 + 2 * c])
            order = ps & 3
            sh = ps >> 2
            w = bits - sh
            half = one << (w - 1)
            wmask = (half << 1) - 1
            kmask = (one << k) - 1
            p1 = 0
            p2 = 0
            o = c * bps
            t = 0
            while t < nfr:
                if p > limit:
                    return int(self.raw(src, n, dst))
                if bps == 4:
                    b3 = int(s[o + 3])
                    if b3 & 0x80:
                        b3 -= 256
                    x = int(s[o]) | (int(s[o + 1]) << 8) | (int(s[o + 2]) << 16) | (b3 << 24)
                else:
                    b1 = int(s[o + 1])
                    if b1 & 0x80:
                        b1 -= 256
                    x = int(s[o]) | (b1 << 8)
                v = x >> sh
                if t >= 2 and order == 2:
                    r = v - p1 - p1 + p2
                elif t >= 1 and order >= 1:
                    r = v - p1
                else:
                    r = v
                r = ((r + half) & wmask) - half
                p2 = p1
                p1 = v
                a = r if r >= 0 else -1 - r  # |r| without overflow; zigzag u = 2a + (r < 0)
                q = ESC
                u = 0
                if (a >> k) < ESC:  # only then is u < 2**29: safe in a 32-bit word
                    u = a + a if r >= 0 else a + a + 1
                    q = u >> k
                if q < ESC:
                    acc = (acc << (q + 1)) | 1  # q zeros and the one: at most 16 bits
                    nb += q + 1
                    while nb >= 8:
                        nb -= 8
                        d[p] = acc >> nb
                        p += 1
                    acc = (acc << k) | (u & kmask)  # k <= 24 bits after at most 7 pending
                    nb += k
                    while nb >= 8:
                        nb -= 8
                        d[p] = acc >> nb
                        p += 1
                else:  # escape: ESC zeros, then r mod 2**w in w bits (two pieces of <= 16)
                    acc = acc << ESC
                    nb += ESC
                    while nb >= 8:
                        nb -= 8
                        d[p] = acc >> nb
                        p += 1
                    left = w
                    while left > 0:
                        take = left if left <= 16 else left - 16
                        left -= take
                        acc = (acc << take) | ((r >> left) & ((one << take) - 1))
                        nb += take
                        while nb >= 8:
                            nb -= 8
                            d[p] = acc >> nb
                            p += 1
                o += stride
                t += 1
            c += 1
        if nb:
            d[p] = acc << (8 - nb)
            p += 1
        if p > n:
            return int(self.raw(src, n, dst))
        return p

    @micropython.viper
    def raw(self, src, n: int, dst) -> int:
        s = ptr8(src)
        d = ptr8(dst)
        d[0] = RAW
        i = 0
        while i < n:
            d[i + 1] = s[i]
            i += 1
        return n + 1
