# Lossless wire coder for DATA payloads, board side. Format: docs/protocol.md,
# "Wire compression (coded DATA)"; the host side is i2scli/audio/wirecode.py.
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


# Leading zero bits of a byte (8 for 0): the decoder reads a Rice code's unary part 8 bits at a
# time with it (armv6m has no CLZ).
_LZ = bytearray(256)
_LZ[0] = 8
for _i in range(1, 256):
    _z = 7
    while _i >> (7 - _z) > 1:
        _z -= 1
    _LZ[_i] = _z
del _i, _z
_RF = bytearray(33)  # 1 where the decoder's bit reader (nb bits) takes 16 more
for _i in range(17):
    _RF[_i] = 1
del _i


# The Thumb fast path (firmware/wirecode_thumb.py): the host puts it before this module on ARM
# boards; elsewhere, or where the firmware could not assemble it, the viper loop below does it all.
try:
    _THUMB = fast16  # noqa: F821
except NameError:
    _THUMB = None


class Decoder(_Coder):
    """decode(src, n_src, dst) -> bytes written to dst, or a negative E_* code. dst must be
    aligned to the sample width (a bytearray is)."""

    # The bit reader: `acc` holds `nb` unread bits in its low end (stale bits above), 17..32 of
    # them at the start of a code, refilled 16 bits at a time. Bytes past the payload read as zeros
    # (`pos` counts them too): the end check finds a code that used one. Comparisons cost viper on
    # armv6m ~8 instructions (it materialises a bool), so the hot path tests plain values instead.

    def __init__(self, bits, channels):
        super().__init__(bits, channels)
        self.thumb = _THUMB
        self.st = bytearray(72)  # its state words (wirecode_thumb.py)

    @micropython.viper
    def decode(self, src, n_src: int, dst) -> int:
        return int(self._decode(0, 0, self, src, n_src, dst))

    @staticmethod
    @micropython.viper
    def _decode(nb: int, u: int, self, src, n_src: int, dst) -> int:
        # nb and u come first: viper keeps its first two locals in registers (the hottest here)
        s = ptr8(src)
        bits = int(self.bits)
        ch = int(self.channels)
        cap = int(len(dst))
        bps = bits >> 3
        stride = ch * bps
        if n_src < 1:
            return E_MODE
        mode = int(s[0])
        if mode == RAW:
            d = ptr8(dst)
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
        if nfr == 0 or out > cap or int(ptr8(dst)) & (bps - 1):
            return E_SPACE
        d16 = ptr16(dst)
        d32 = ptr32(dst)
        lz = ptr8(_LZ)
        rf = ptr8(_RF)
        thumb = self.thumb
        asm = 1 if thumb else 0
        stb = self.st
        st = ptr32(stb)
        st[3] = int(s) + n_src - 1  # the Thumb loop refills only before the last byte, as the fast one here
        st[15] = stride
        st[16] = int(lz)
        s1 = ptr8(int(s) + 1)
        wide = bps - 2  # non-zero for 32-bit slots
        one = 1
        lim = n_src - 1
        pos = head
        acc = 0
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
            big = k > 9  # the k bits may need a refill after the unary part
            k1 = k + 1
            fast = 0 if big or wide else 1  # 16-bit, k <= 9: the loop below without those cases
            st[10] = k
            st[11] = kmask
            st[12] = sh
            st[17] = k1
            # prediction: order 2 runs dd += r, v += dd; order 1 v += r; order 0 v = r
            dm = -1 if order == 2 else 0
            vm = -1 if order else 0
            st[13] = dm
            st[14] = vm
            dd = 0
            v1 = 0
            o = c
            first = 1
            m = 1  # sample 0 alone first: its order is 0, and sample 1's at most 1
            t = nfr
            while t:
                t -= m
                while m:
                    if fast:
                        if asm:  # the Thumb loop as far as it goes; this one finishes
                            st[0] = acc
                            st[1] = nb
                            st[2] = int(s) + pos
                            st[4] = dd
                            st[5] = v1
                            st[6] = int(d16) + (o << 1)
                            st[7] = m
                            st[8] = sa
                            st[9] = sb
                            thumb(stb)
                            acc = st[0]
                            nb = st[1]
                            pos = st[2] - int(s)
                            dd = st[4]
                            v1 = st[5]
                            o = (st[6] - int(d16)) >> 1
                            m = st[7]
                            sa = st[8]
                            sb = st[9]
                        while m:
                            while rf[nb]:  # nb <= 16: to 17..32 (twice from 0)
                                if pos < lim:
                                    acc = (acc << 16) | (int(s[pos]) << 8) | int(s1[pos])
                                else:
                                    acc = acc << 16
                                    if pos < n_src:
                                        acc |= int(s[pos]) << 8
                                    elif pos > n_src + 8:
                                        return E_DATA
                                pos += 2
                                nb += 16
                            q = int(lz[(acc >> (nb - 8)) & 0xFF])
                            if q & 8:
                                break  # q >= 8: the general code below takes this sample
                            nb -= q + k1
                            u = (q << k) | ((acc >> nb) & kmask)
                            dd = (dd & dm) + ((u >> 1) ^ (0 - (u & 1)))
                            v1 = (v1 & vm) + dd
                            d16[o] = v1 << sh
                            sa += d16[o]  # the stored sample is its checksum word
                            sb += sa
                            o += ch
                            m -= 1
                        if not m:
                            break
                    while not ((nb + 15) >> 5):  # nb <= 16: to 17..32 (twice from 0)
                        if pos < lim:
                            acc = (acc << 16) | (int(s[pos]) << 8) | int(s[pos + 1])
                        else:
                            acc = acc << 16
                            if pos < n_src:
                                acc |= int(s[pos]) << 8
                            elif pos > n_src + 8:
                                return E_DATA
                        pos += 2
                        nb += 16
                    p8 = (acc >> (nb - 8)) & 0xFF
                    if p8:  # unary part q < 8
                        q = int(lz[p8])
                        nb -= q + 1
                        if big:
                            u = 0
                            left = k
                            while left:
                                take = left if left <= 16 else left - 16
                                if nb < take:
                                    if pos < lim:
                                        acc = (acc << 16) | (int(s[pos]) << 8) | int(s[pos + 1])
                                    else:
                                        acc = acc << 16
                                        if pos < n_src:
                                            acc |= int(s[pos]) << 8
                                        elif pos > n_src + 8:
                                            return E_DATA
                                    pos += 2
                                    nb += 16
                                nb -= take
                                u = (u << take) | ((acc >> nb) & ((one << take) - 1))
                                left -= take
                            u |= q << k
                        else:
                            nb -= k
                            u = (q << k) | ((acc >> nb) & kmask)
                        r = (u >> 1) ^ (0 - (u & 1))
                    else:  # q >= 8: 8 more bits of unary part, or an escape
                        nb -= 8
                        if not ((nb + 15) >> 5):
                            if pos < lim:
                                acc = (acc << 16) | (int(s[pos]) << 8) | int(s[pos + 1])
                            else:
                                acc = acc << 16
                                if pos < n_src:
                                    acc |= int(s[pos]) << 8
                                elif pos > n_src + 8:
                                    return E_DATA
                            pos += 2
                            nb += 16
                        p8 = (acc >> (nb - 8)) & 0xFF
                        if p8:
                            q = int(lz[p8])
                            nb -= q + 1
                            q += 8
                            left = k
                        else:  # escape: ESC zeros, then r mod 2**w in w bits
                            nb -= 8
                            q = 0
                            left = w
                        u = 0
                        while left:  # in pieces of at most 16 bits
                            take = left if left <= 16 else left - 16
                            if nb < take:
                                if pos < lim:
                                    acc = (acc << 16) | (int(s[pos]) << 8) | int(s[pos + 1])
                                else:
                                    acc = acc << 16
                                    if pos < n_src:
                                        acc |= int(s[pos]) << 8
                                    elif pos > n_src + 8:
                                        return E_DATA
                                pos += 2
                                nb += 16
                            nb -= take
                            u = (u << take) | ((acc >> nb) & ((one << take) - 1))
                            left -= take
                        if p8:
                            u |= q << k
                            r = (u >> 1) ^ (0 - (u & 1))
                        else:
                            r = u
                    dd = (dd & dm) + r
                    v1 = (v1 & vm) + dd
                    x = v1 << sh
                    if wide:
                        d32[o] = x
                        sa += x & 0xFFFF
                        sb += sa
                        sa += (x >> 16) & 0xFFFF
                    else:
                        d16[o] = x
                        sa += x & 0xFFFF
                    sb += sa
                    o += ch
                    m -= 1
                sa %= ADLER  # below 2**31 for 120 samples (240 words)
                sb %= ADLER
                if first:
                    dd = 0  # sample 1 is predicted by sample 0 alone
                    first = 0
                m = t if t < 120 else 120
            c += 1
        left = nb - 8 * (pos - n_src)  # unread bits of the payload
        if left < 0:
            return E_DATA
        if left >= 8 or (acc >> (nb - left)) & ((one << left) - 1):
            return E_TRAIL
        if sa != (int(s[3]) | (int(s[4]) << 8)) or sb != (int(s[5]) | (int(s[6]) << 8)):
            return E_CHECK
        return out


class Encoder(_Coder):
    """encode(src, n, dst) -> bytes written to dst (coded, or RAW + the n bytes when coding does
    not save at least a few bytes), or E_SPACE. dst must hold n + 1 bytes."""

    def __init__(self, bits, channels):
        super().__init__(bits, channels)
        # per channel the plan (order | shift << 2, k) the last payload's statistics chose for
        # this one; byte 16: 1 once there is one
        self.plan = bytearray(17)

    # One pass a payload: each channel is coded with the order, shift and k that the previous
    # payload's statistics chose, while this payload's own are taken (checksum, wasted bits, sums
    # of |residual| of the three orders) for the next one. The header carries what was used, so
    # the format does not change. When the plan does not fit (a shift the audio no longer has, or
    # a coding no smaller than the audio) the pass runs once more with the plan this payload's
    # statistics make; only that can still end RAW. Residuals are not wrapped modulo 2**w: one
    # that would wrap small is rare and codes as an escape, whose w bits are the same.
    @micropython.viper
    def encode(self, src, n: int, dst) -> int:
        return int(self._encode(0, 0, self, src, n, dst))

    @staticmethod
    @micropython.viper
    def _encode(v: int, e: int, self, src, n: int, dst) -> int:
        # v and e come first: viper keeps its first two locals in registers (the hottest here)
        s = ptr8(src)
        s1 = ptr8(int(s) + 1)
        s2 = ptr8(int(s) + 2)
        s3 = ptr8(int(s) + 3)
        d = ptr8(dst)
        d1 = ptr8(int(d) + 1)
        pl = ptr8(self.plan)
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
        wide = bps - 2
        sc = 7 if wide else 0  # 32-bit slots sum |residual| >> 7: 64 of them fit a word
        limit = n - 8  # a code writes at most 7 bytes, the padding 1: coded stays <= n bytes
        cold = 1 if not pl[16] else 0
        if cold:  # no plan yet: any will do for the first pass, which only measures
            c = 0
            while c < ch:
                pl[2 * c] = 2
                pl[2 * c + 1] = 8
                c += 1
        runs = 0
        while True:
            runs += 1
            bad = 0  # the plan failed: a shift the audio does not have, or no saving
            sa = 0
            sb = 0
            p = head
            acc = 0  # bit accumulator: nb pending bits in its low end (at most 15 between codes)
            nb = 0
            c = 0
            while c < ch:
                ps = int(pl[2 * c])
                k = int(pl[2 * c + 1])
                d[HEADER + 2 * c] = ps
                d[HEADER + 1 + 2 * c] = k
                order = ps & 3
                sh = ps >> 2
                w = bits - sh
                kmask = (one << k) - 1
                kbit = one << k
                k1 = k + 1
                off = 14 if k1 > 1 else 15  # a code of L bits is a short one when L + off < 32
                m0 = -1  # sample 0 codes as order 0 in every order
                m1 = 0
                m2 = 0
                ored = 0
                p1 = 0
                e1 = 0
                h0 = 0
                l0 = 0
                h1 = 0
                l1 = 0
                h2 = 0
                l2 = 0
                o = c * bps
                m = 1
                t = nfr
                while t:
                    t -= m
                    c0 = 0
                    c1 = 0
                    c2 = 0
                    if wide:
                        while m:
                            lo = int(s[o]) | (int(s1[o]) << 8)
                            sa += lo
                            sb += sa
                            if wide:
                                hi = int(s2[o]) | (int(s3[o]) << 8)
                                sa += hi
                                sb += sa
                                ored |= lo | (hi << 16)
                                v = (lo | (((hi ^ 0x8000) - 0x8000) << 16)) >> sh
                            else:
                                ored |= lo
                                v = ((lo ^ 0x8000) - 0x8000) >> sh
                            e = v - p1
                            p1 = v
                            c0 += (v ^ (v >> 31)) >> sc
                            c1 += (e ^ (e >> 31)) >> sc
                            x = e - e1
                            e1 = e
                            c2 += (x ^ (x >> 31)) >> sc
                            if m2:
                                r = x
                            elif m1:
                                r = e
                            else:
                                r = v
                            u = (r << 1) ^ (r >> 31)  # zigzag
                            q = u >> k
                            if ((r >> 30) + 1) >> 1:  # |r| >= 2**30: u overflows a 32-bit word
                                q = ESC
                            L = q + k1
                            if not ((L + off) >> 5):  # q zeros, the one, k bits: at most 17 bits
                                acc = (acc << L) | (u & kmask) | kbit
                                nb += L
                                while nb >> 4:
                                    nb -= 16
                                    d[p] = acc >> (nb + 8)
                                    d1[p] = acc >> nb
                                    p += 2
                                    if p > limit:
                                        p = head  # no saving: go on measuring
                                        bad = 1
                            else:
                                if q >> 4:  # escape: ESC zeros, then r mod 2**w in w bits
                                    acc = acc << ESC
                                    nb += ESC
                                    left = w
                                else:  # q zeros and the one, then k bits
                                    acc = (acc << (q + 1)) | 1
                                    nb += q + 1
                                    left = k
                                    r = u
                                while nb >= 8:
                                    nb -= 8
                                    d[p] = acc >> nb
                                    p += 1
                                while left > 0:  # in pieces of at most 16 bits
                                    take = left if left <= 16 else left - 16
                                    left -= take
                                    acc = (acc << take) | ((r >> left) & ((one << take) - 1))
                                    nb += take
                                    while nb >= 8:
                                        nb -= 8
                                        d[p] = acc >> nb
                                        p += 1
                                if p > limit:
                                    p = head
                                    bad = 1
                            o += stride
                            m -= 1
                    else:
                        while m:
                            lo = int(s[o]) | (int(s1[o]) << 8)
                            sa += lo
                            sb += sa
                            ored |= lo
                            v = ((lo ^ 0x8000) - 0x8000) >> sh
                            e = v - p1
                            p1 = v
                            c0 += v ^ (v >> 31)
                            c1 += e ^ (e >> 31)
                            x = e - e1
                            e1 = e
                            c2 += x ^ (x >> 31)
                            if m2:
                                r = x
                            elif m1:
                                r = e
                            else:
                                r = v
                            u = (r << 1) ^ (r >> 31)  # zigzag (|r| < 2**18 here)
                            q = u >> k
                            L = q + k1
                            if not ((L + off) >> 5):  # q zeros, the one, k bits: at most 17 bits
                                acc = (acc << L) | (u & kmask) | kbit
                                nb += L
                                while nb >> 4:
                                    nb -= 16
                                    d[p] = acc >> (nb + 8)
                                    d1[p] = acc >> nb
                                    p += 2
                                    if p > limit:
                                        p = head  # no saving: go on measuring
                                        bad = 1
                            else:
                                if q >> 4:  # escape: ESC zeros, then r mod 2**w in w bits
                                    acc = acc << ESC
                                    nb += ESC
                                    left = w
                                else:  # q zeros and the one, then k bits
                                    acc = (acc << (q + 1)) | 1
                                    nb += q + 1
                                    left = k
                                    r = u
                                while nb >= 8:
                                    nb -= 8
                                    d[p] = acc >> nb
                                    p += 1
                                while left > 0:  # in pieces of at most 16 bits
                                    take = left if left <= 16 else left - 16
                                    left -= take
                                    acc = (acc << take) | ((r >> left) & ((one << take) - 1))
                                    nb += take
                                    while nb >= 8:
                                        nb -= 8
                                        d[p] = acc >> nb
                                        p += 1
                                if p > limit:
                                    p = head
                                    bad = 1
                            o += stride
                            m -= 1
                    sa %= ADLER
                    sb %= ADLER
                    if m0 and order:  # after sample 0: the frame's order, sums from sample 1
                        m0 = 0
                        m1 = -1 if order == 1 else 0
                        m2 = -1 if order == 2 else 0
                        e1 = 0  # sample 1 is predicted by sample 0 alone
                    else:
                        if t == nfr - 1:
                            e1 = 0
                            c0 = 0
                            c1 = 0
                            c2 = 0
                        h0 += c0 >> 15
                        l0 += c0 & 0x7FFF
                        h1 += c1 >> 15
                        l1 += c1 & 0x7FFF
                        h2 += c2 >> 15
                        l2 += c2 & 0x7FFF
                    m = t if t < 120 else 120
                # the plan for the next payload (or for this one, run again)
                nsh = 0
                if ored:
                    while not ((ored >> nsh) & 1):
                        nsh += 1
                if (ored >> sh) << sh != ored:
                    bad = 1  # bits below the shift: the plan cannot code this audio
                h0 += l0 >> 15
                l0 &= 0x7FFF
                h1 += l1 >> 15
                l1 &= 0x7FFF
                h2 += l2 >> 15
                l2 &= 0x7FFF
                norder = 0
                bh = h0
                bl = l0
                if h1 < bh or (h1 == bh and l1 < bl):
                    norder = 1
                    bh = h1
                    bl = l1
                if h2 < bh or (h2 == bh and l2 < bl):
                    norder = 2
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
                kn = 0
                cnt1 = nfr - 1 if nfr > 1 else 1
                while kn < 30 and (tot >> (kn + 1)) >= cnt1:
                    kn += 1
                kn += base + sc + sh - nsh  # the sums are of samples >> sh
                if kn < 0:
                    kn = 0
                if kn > KMAX:
                    kn = KMAX
                pl[2 * c] = norder | (nsh << 2)
                pl[2 * c + 1] = kn
                c += 1
            pl[16] = 1
            if cold:
                cold = 0
                bad = 1
            if not bad:
                break
            if runs == 2:
                return int(self.raw(src, n, dst))
        while nb >= 8:
            nb -= 8
            d[p] = acc >> nb
            p += 1
        if nb:
            d[p] = acc << (8 - nb)
            p += 1
        if p > n:
            return int(self.raw(src, n, dst))
        d[0] = CODED
        d[1] = nfr
        d[2] = nfr >> 8
        d[3] = sa
        d[4] = sa >> 8
        d[5] = sb
        d[6] = sb >> 8
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
