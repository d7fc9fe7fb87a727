"""Wire coder speed: host CPU to code 10 s of 48 kHz 16-bit stereo, and the board
coder's cost per second of audio under the MicroPython unix port. Prints; asserts nothing.

    .venv/bin/python bench/wirecode_speed.py [--payload 4096]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path[:0] = [str(ROOT / "tests" / "unit"), str(ROOT / "tests")]  # test_wirecode, its conftest

from test_wirecode import music, pcm, speech, stereo  # noqa: E402

from i2scli.audio import wirecode as wc  # noqa: E402

SECONDS = 10.0
BOARD = """
import sys, time
sys.path.insert(0, {fw!r})
import wirecode
data = open({path!r}, 'rb').read()
op = {op!r}
dst = bytearray(70000)
f = wirecode.Decoder(16, 2).decode if op == 'D' else wirecode.Encoder(16, 2).encode
pos = 0
parts = []
while pos < len(data):
    n = data[pos] | data[pos + 1] << 8
    parts.append(data[pos + 2 : pos + 2 + n])
    pos += 2 + n
t0 = time.ticks_us()
for p in parts:
    if f(p, len(p), dst) < 0:
        raise SystemExit('board coder error')
print(time.ticks_diff(time.ticks_us(), t0))
"""


def cpu(fn) -> tuple[float, object]:
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def board_seconds(op: str, parts: list[bytes], tmp: Path) -> float:
    tmp.write_bytes(b"".join(len(p).to_bytes(2, "little") + p for p in parts))
    script = BOARD.format(fw=str(ROOT / "firmware"), path=str(tmp), op=op)
    r = subprocess.run([str(Path(sys.executable).parent / "micropython"), "-X", "heapsize=8M", "-c", script],
                       capture_output=True, text=True, check=True)
    return int(r.stdout.strip()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--payload", type=int, default=4096, help="DATA payload bytes (default 4096)")
    args = ap.parse_args()
    signals = {"speech": speech(SECONDS), "music": music(SECONDS)}
    for name, mono in signals.items():
        x = pcm(stereo(mono), 16)
        parts = [x[i : i + args.payload] for i in range(0, len(x), args.payload)]
        enc_s, coded = cpu(lambda parts=parts: [wc.encode(p, 16, 2) for p in parts])
        dec_s, back = cpu(lambda coded=coded: [wc.decode(c, 16, 2) for c in coded])
        assert b"".join(back) == x
        tmp = Path(f"/tmp/wirecode-bench-{name}.bin")
        bdec = board_seconds("D", coded, tmp)
        benc = board_seconds("E", parts, tmp)
        tmp.unlink()
        ratio = len(x) / sum(map(len, coded))
        print(f"{name:6s} 10 s 48 kHz 16-bit stereo, {args.payload} B payloads: ratio {ratio:.2f}x")
        print(f"  host encode {enc_s:.3f} s CPU ({enc_s / SECONDS:.1%} of a core), decode {dec_s:.3f} s "
              f"({dec_s / SECONDS:.1%})")
        print(f"  board (unix port, viper) decode {bdec / SECONDS * 1000:.1f} ms, encode "
              f"{benc / SECONDS * 1000:.1f} ms per second of audio")


if __name__ == "__main__":
    main()
