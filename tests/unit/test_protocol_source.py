"""One protocol source: i2scli/protocol.py. The board agent's frame types and framing constants
are generated into its modules from it when the host uploads or installs them; the JSON keys and
the coder's constants the board and docs/protocol.md keep as copies. These tests fail when a
module defines a generated name itself or names one that is not generated, and when a key or a
coder constant differs between host, board and docs."""

from __future__ import annotations

import ast
import re

import pytest
from conftest import ROOT

from i2scli import protocol as proto
from i2scli.link import agent_code as ac

FIRMWARE = ROOT / "firmware"
DOCS = (ROOT / "docs" / "protocol.md").read_text()
GENERATED = {**ac.generated_consts(), **ac.generated_tables()}  # what the host gives the agent
UPPER = re.compile(r"^_?[A-Z][A-Z0-9_]*$")  # how the agent spells a constant


def source(name: str) -> str:
    return (FIRMWARE / f"{name}.py").read_text()


def consts(name: str) -> dict[str, int]:
    """A firmware module's `NAME = const(value)` block."""
    out = {}
    for node in ast.parse(source(name)).body:
        if ac._const(node) is not None:
            out[node.targets[0].id] = ast.literal_eval(node.value.args[0])
    return out


def function(module: str, qualname: str) -> ast.FunctionDef:
    body = ast.parse(source(module)).body
    *outer, name = qualname.split(".")
    for part in outer:
        body = next(n for n in body if isinstance(n, ast.ClassDef) and n.name == part).body
    return next(n for n in body if isinstance(n, ast.FunctionDef) and n.name == name)


def sent_keys(fn: ast.FunctionDef, frame: str) -> set[str]:
    """Keys of the dict literal a function sends as `frame` (link.send_json(_FRAME, {...}))."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "send_json" \
                and getattr(node.args[0], "id", None) == f"_{frame}" and isinstance(node.args[1], ast.Dict):
            return {k.value for k in node.args[1].keys}
    raise AssertionError(f"{fn.name} sends no {frame} dict")


def built_keys(fn: ast.FunctionDef) -> set[str]:
    """Keys of the dict a function builds as `s` or returns: its literal and `s["key"] = ...`."""
    out = set()
    for node in ast.walk(fn):
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(node, (ast.Assign, ast.Return)) and isinstance(node.value, ast.Dict) \
                and (target is None or getattr(target, "id", None) == "s"):
            out |= {k.value for k in node.value.keys}  # the summary itself, not the dicts inside it
        if isinstance(target, ast.Subscript) and getattr(target.value, "id", None) == "s":
            out.add(target.slice.value)
    return out


# -- docs/protocol.md -------------------------------------------------------------------------------
def frame_table() -> dict[str, tuple[int, str]]:
    """The Frame types table: name -> (type, payload column)."""
    section = DOCS.split("## Frame types", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (0x[0-9A-Fa-f]{2}) \| (\w+) \| [^|]+ \| (.*) \|$", section, re.M)
    return {name: (int(t, 16), payload) for t, name, payload in rows}


def keys_outside_parens(text: str) -> list[str]:
    """The `backticked` words of a key list, less what parentheses say about each."""
    depth, flat = 0, []
    for ch in text:
        depth += ch == "("
        if not depth:
            flat.append(ch)
        depth -= ch == ")" and depth > 0
    return re.findall(r"`(\w+)`", "".join(flat))


def doc_keys(frame: str) -> list[str]:
    return keys_outside_parens(frame_table()[frame][1])


def adds(section: str, frame: str) -> list[str]:
    """The keys a section's "FRAME adds ..." sentence names (up to its full stop or colon)."""
    text = " ".join(DOCS.split(f"\n## {section}", 1)[1].split("\n## ", 1)[0].split())
    rest = text.split(f"{frame} adds ", 1)[1]
    depth = 0
    for i, ch in enumerate(rest):
        depth += (ch == "(") - (ch == ")")
        if ch in ".:" and depth == 0 and (i + 1 == len(rest) or rest[i + 1] == " "):
            return keys_outside_parens(rest[:i])
    raise AssertionError(f"no full stop after '{frame} adds' in {section}")


# -- frame types ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ac.AGENT_MODULES)
def test_each_module_names_constants_it_defines_imports_or_gets(name):
    """A constant a module names is its own, imported, or generated into it (`with_consts`); a
    generated one it does not define itself (two sources)."""
    tree = ast.parse(source(name))
    own = set(consts(name))
    assert not own & set(GENERATED), f"{name} defines {sorted(own & set(GENERATED))}: protocol.py gives them"
    bound = own | {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bound |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    bound |= {a.asname or a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
              for a in n.names}
    named = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and UPPER.match(n.id)}
    assert named <= bound | set(GENERATED), f"{name} names {sorted(named - bound - set(GENERATED))}"


def test_the_board_names_every_frame_type_the_host_has():
    board = {n.id for name in ac.AGENT_MODULES for n in ast.walk(ast.parse(source(name))) if isinstance(n, ast.Name)}
    assert {f"_{t.name}" for t in proto.FrameType} <= board


def test_the_docs_frame_table_is_the_protocols():
    assert {name: t for name, (t, _) in frame_table().items()} == {t.name: int(t) for t in proto.FrameType}


# -- the JSON frames' keys ----------------------------------------------------------------------------
def test_hello_keys_host_board_docs():
    assert sent_keys(function(ac.AGENT_NAME, "_hello"), "HELLO") == set(proto.HELLO_KEYS)
    assert doc_keys("HELLO") == list(proto.HELLO_KEYS)


def test_ready_keys_host_board_docs():
    assert sent_keys(function(ac.AGENT_NAME, "main"), "READY") == set(proto.READY_KEYS)
    assert doc_keys("READY") == list(proto.READY_KEYS)


def test_error_keys_host_board_docs():
    assert sent_keys(function(ac.AGENT_NAME, "main"), "ERROR") == set(proto.ERROR_KEYS)
    assert doc_keys("ERROR") == list(proto.ERROR_KEYS)


def test_summary_keys_host_board_docs():
    assert built_keys(function("i2s_stream", "Stream.summary")) == set(proto.SUMMARY_KEYS)
    assert doc_keys("SUMMARY") == list(proto.SUMMARY_KEYS)
    modes = {"probe": ("i2s_stream", "Probing.probe"), "duplex": ("i2s_duplex", "Duplex.summary"),
             "loop": ("i2s_loop", "Loop.summary")}
    sections = {"probe": "Link probe", "duplex": "Duplex", "loop": "Loop"}
    for mode, (module, fn) in modes.items():
        assert built_keys(function(module, fn)) == set(proto.SUMMARY_MODE_KEYS[mode]), mode
        assert adds(sections[mode], "SUMMARY") == list(proto.SUMMARY_MODE_KEYS[mode]), mode


def test_start_keys_host_board_docs():
    """START: what the board reads is what the host may send, and what the docs list (the frame
    table's row and what the Duplex and Loop sections add)."""
    read = set()
    for name in ac.AGENT_MODULES:
        text = source(name)
        read |= set(re.findall(r'cfg(?:\["\w+"\])*\["(\w+)"\]', text))
        read |= set(re.findall(r'cfg\.get\("(\w+)"', text))
        read |= set(re.findall(r'pins(?:\.get\(|\[)"(\w+)"', text))
    assert read == set(proto.START_KEYS)
    documented = doc_keys("START") + adds("Duplex", "START") + adds("Loop", "START")
    assert set(documented) == set(proto.START_KEYS), set(documented) ^ set(proto.START_KEYS)


# -- the wire coder -------------------------------------------------------------------------------------
def test_coder_parts_host_board_docs():
    """HELLO's `codec` bits name the board coder's classes, the same on both sides and in the docs."""
    stream = ast.parse(source("i2s_stream"))
    (bits,) = [ast.literal_eval(n.value) for n in stream.body if isinstance(n, ast.Assign)
               and getattr(n.targets[0], "id", None) == "_CODER_BITS"]
    assert bits == proto.CODER_PARTS
    coder = {n.name for n in ast.parse(source("wirecode")).body if isinstance(n, ast.ClassDef)}
    assert set(proto.CODER_PARTS) <= coder
    said = dict(re.findall(r"(\d) = (?:the board has )?the (decoder|encoder)", DOCS))
    assert {int(b): part.capitalize() for b, part in said.items()} == {v: k for k, v in proto.CODER_PARTS.items()}


def test_coder_constants_host_and_board():
    """The coded payload's format constants in the host's numpy coder, the board's viper one and
    docs/protocol.md (Wire compression)."""
    from i2scli.audio import wirecode

    board = consts("wirecode")
    for name in ("RAW", "CODED", "ESC", "KMAX", "HEADER", "ADLER"):
        assert board[name] == getattr(wirecode, name), name
    # and as the docs' layout and Rice-code sections give them
    layout = DOCS.split("### Layout", 1)[1]
    assert f"RAW   (0x{wirecode.RAW:02x})" in layout and f"CODED (0x{wirecode.CODED:02x})" in layout
    assert f"{wirecode.HEADER}      2*C   per channel" in layout
    assert f"k, the Rice parameter, 0-{wirecode.KMAX}" in layout
    assert f"(escape): {wirecode.ESC} zero bits" in DOCS and f"`{wirecode.ESC} << {wirecode.KMAX} = 2^28`" in DOCS
    assert f"mod {wirecode.ADLER}`" in DOCS


# -- the checks themselves: a copy that drifts fails them --------------------------------------------
def test_a_drifted_copy_is_caught(monkeypatch):
    monkeypatch.setattr(proto, "HELLO_KEYS", proto.HELLO_KEYS[:-1])
    with pytest.raises(AssertionError):
        test_hello_keys_host_board_docs()
    monkeypatch.undo()
    text = source("i2s_duplex").replace("import time\n", "import time\n_SWITCH = const(15)\n", 1)
    with pytest.raises(AssertionError, match="_SWITCH"):
        ac.with_consts(text)


@pytest.mark.slow
@pytest.mark.e2e  # starts a virtual board
def test_what_the_virtual_board_says_is_what_the_host_expects():
    """The agent as it runs (uploaded, on the real MicroPython): its HELLO has exactly the
    protocol's keys, and its SUMMARY every key every stream has."""
    from i2scli.link import connect

    with connect("sim://fast", baud="off") as agent:
        assert set(agent.hello) == set(proto.HELLO_KEYS)
        cfg = {"id": 0, "sck": 16, "ws": 17, "sd": 18, "bits": 16, "format": "stereo", "rate": 16000,
               "ibuf": 4096, "payload": 244}
        summary = agent.play(cfg, [bytes(976)])
    assert set(proto.SUMMARY_KEYS) - {"overrun_at", "port_xruns", "code"} <= set(summary)
