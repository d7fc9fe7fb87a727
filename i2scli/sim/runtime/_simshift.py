# The virtual board's I2S.shift (MicroPython code, runs inside the unix port): the port's
# argument checks, then each sample shifted in place (viper where the build has it).
from _simport import _get_int


def shift(*args, **kw):
    if args:
        raise TypeError("extra positional arguments given")
    for n in ("buf", "bits", "shift"):
        if n not in kw:
            raise TypeError("'%s' argument required" % n)
    if len(kw) > 3:
        raise TypeError("extra keyword arguments given")
    buf = kw["buf"]
    bits = _get_int(kw["bits"])
    sh = _get_int(kw["shift"])
    mv = memoryview(buf)  # TypeError for objects without the buffer protocol
    if bits == 16:
        _shift16(buf, len(mv) // 2, sh)
    elif bits == 32:
        _shift32(buf, len(mv) // 4, sh)
    else:
        raise ValueError("invalid bits")


def _shift_py(buf, n, sh, size):
    # portable fallback for builds without the viper emitter
    full = 1 << (size * 8)
    half = full >> 1
    i = 0
    while i < n:
        o = i * size
        v = int.from_bytes(buf[o:o + size], "little")
        if v >= half:
            v -= full
        v = v << sh if sh >= 0 else v >> -sh
        buf[o:o + size] = (v & (full - 1)).to_bytes(size, "little")
        i += 1


_shift16 = None
_shift32 = None
try:
    exec(
        "@micropython.viper\n"
        "def _shift16(buf, n: int, sh: int):\n"
        "    p = ptr16(buf)\n"
        "    i = 0\n"
        "    while i < n:\n"
        "        v = int(p[i])\n"
        "        if v & 0x8000:\n"
        "            v = v - 0x10000\n"
        "        if sh >= 0:\n"
        "            v = v << sh\n"
        "        else:\n"
        "            v = v >> (0 - sh)\n"
        "        p[i] = v\n"
        "        i += 1\n"
        "@micropython.viper\n"
        "def _shift32(buf, n: int, sh: int):\n"
        "    p = ptr32(buf)\n"
        "    i = 0\n"
        "    while i < n:\n"
        "        v = int(p[i])\n"
        "        if v & 0x80000000:\n"
        "            v = v - 0x100000000\n"
        "        if sh >= 0:\n"
        "            v = v << sh\n"
        "        else:\n"
        "            v = v >> (0 - sh)\n"
        "        p[i] = v\n"
        "        i += 1\n",
        globals(),
    )
except Exception:
    pass
if _shift16 is None:
    def _shift16(buf, n, sh):
        _shift_py(buf, n, sh, 2)

    def _shift32(buf, n, sh):
        _shift_py(buf, n, sh, 4)
