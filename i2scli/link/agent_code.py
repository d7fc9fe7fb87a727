"""The agent's source as it goes to the board: versioned, minified, cut into chunks."""

from __future__ import annotations

import ast
import hashlib
import importlib.resources
import re

AGENT_NAME = "i2s_agent"
UPLOAD_MARKER = b"I2S:UPLOAD"

# Run the installed agent when its version matches, else say so and let the host upload it.
BOOTSTRAP = """\
import sys
try:
    sys.modules.pop({name!r}, None)
    import {name} as _i2s_a
    _i2s_ok = _i2s_a.VERSION == {version!r}
except ImportError:
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


def agent_chunks(limit: int = 4096) -> list[str]:
    """The agent split at top-level statements into pieces of at most ~limit bytes: the board
    parses each on its own, so a small heap never holds the whole module's parse tree."""
    tree = ast.parse(agent_source())
    # `_NAME = const(...)` exists only at compile time in MicroPython (not as a global), so
    # every chunk carries the constants it may use.
    consts = "from micropython import const\n" + "".join(
        ast.unparse(n) + "\n" for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
        and getattr(n.value.func, "id", None) == "const")
    chunks, current = [], ""
    for node in tree.body:
        text = ast.unparse(node) + "\n"
        if current and len(current) + len(text) > limit:
            chunks.append(current)
            current = ""
        current += text
    if current:
        chunks.append(current)
    return [chunks[0]] + [consts + c for c in chunks[1:]]


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
