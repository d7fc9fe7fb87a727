"""The wheel and the sdist hold every module and run-time file of the source tree, and nothing else.

The rest of the suite runs on an editable install, where the source tree stands in for whatever the
packaging leaves out (a subpackage, the virtual board's MicroPython runtime, an agent module). Here
the sdist and the wheel are built as users get them (`python -m build`: the sdist, then the wheel
from it), compared file by file with the tree, and the wheel is installed (not editable) into a
folder of its own: every `i2scli.*` module must import from there, and the tool must play on a
virtual board from there. .ci/wheel-check runs every command from a fresh venv as well.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

import i2scli

pytestmark = pytest.mark.slow

# Folders of the product, as they sit in the tree and where they go in the wheel.
SHIPPED = {"i2scli/": "i2scli/", "firmware/": "i2scli/firmware/"}
NOT_PRODUCT_DIRS = {"__pycache__", "node_modules"}


def _is_product(rel: str) -> bool:
    parts = rel.split("/")
    return (
        any(rel.startswith(top) for top in SHIPPED)
        and not NOT_PRODUCT_DIRS.intersection(parts)
        and not rel.endswith((".pyc", ".pyo"))
        and not any(p.startswith(".") for p in parts)
    )


def _tree_files() -> list[str]:
    """The checkout's files, tracked and new (not ignored): what a clean checkout would hold."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout.decode()
        return sorted(f for f in out.split("\0") if f and (ROOT / f).is_file())
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an unpacked sdist)
        skip = {".venv", "build", "dist", ".git", *NOT_PRODUCT_DIRS}
        return sorted(
            p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
            if p.is_file() and not skip.intersection(p.relative_to(ROOT).parts)
            and not any(part.endswith(".egg-info") for part in p.relative_to(ROOT).parts)
        )


def _wheel_name(rel: str) -> str:
    for top, inside in SHIPPED.items():
        if rel.startswith(top):
            return inside + rel[len(top):]
    raise AssertionError(rel)


@pytest.fixture(scope="module")
def tree() -> list[str]:
    return _tree_files()


@pytest.fixture(scope="module")
def built(tree, tmp_path_factory) -> dict[str, Path]:
    """python -m build on a copy of the checkout's files, so no build/ or egg-info left by earlier
    builds (or the editable install) can add a file the configuration would not."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for rel in tree:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    r = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp / "dist"), str(src)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    wheels, sdists = sorted((tmp / "dist").glob("*.whl")), sorted((tmp / "dist").glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list((tmp / "dist").iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0], "tmp": tmp}


@pytest.fixture(scope="module")
def installed(built) -> Path:
    """The wheel installed (not editable, no dependencies: the suite's venv has them) into a
    folder of its own."""
    target = built["tmp"] / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
         "--target", str(target), str(built["wheel"])],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return target


def _run_installed(target: Path, args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Python with the installed wheel first on its path and the suite's site-packages (for the
    dependencies) after it, but without `site` (-S): the editable install's finder, which a .pth
    file in site-packages would install, never runs, so nothing can come from the source tree."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *site.getsitepackages()])}
    env.pop("PYTHONHOME", None)
    return subprocess.run(
        [sys.executable, "-S", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_wheel_holds_every_file_of_the_package_and_nothing_else(tree, built):
    expected = {_wheel_name(rel) for rel in tree if _is_product(rel)}
    # the files the board and the virtual board need at run time are among them
    assert {"i2scli/firmware/i2s_agent.py", "i2scli/firmware/wirecode.py", "i2scli/sim/runtime/_simi2s.py",
            "i2scli/sim/runtime/machine.py"} <= expected
    with zipfile.ZipFile(built["wheel"]) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
    dist_info = f"i2scli-{i2scli.__version__}.dist-info/"
    held = {n for n in names if not n.startswith(dist_info)}
    missing, extra = sorted(expected - held), sorted(held - expected)
    assert not missing, f"the wheel lacks {len(missing)} file(s) of the tree: {missing}"
    assert not extra, f"the wheel holds file(s) that are not the product: {extra}"
    assert f"{dist_info}licenses/LICENSE" in names, names
    assert built["wheel"].name == f"i2scli-{i2scli.__version__}-py3-none-any.whl"


def test_the_sdist_holds_every_file_of_the_package_and_no_tests(tree, built):
    top = f"i2scli-{i2scli.__version__}/"
    with tarfile.open(built["sdist"]) as t:
        held = {m.name[len(top):] for m in t.getmembers() if m.isfile()}
    expected = {rel for rel in tree if _is_product(rel)}
    assert not sorted(expected - held), f"the sdist lacks {sorted(expected - held)}"
    assert {"pyproject.toml", "setup.py", "README.md", "LICENSE"} <= held
    assert not [n for n in held if n.startswith(("tests/", "bench/", ".ci/")) or "__pycache__" in n]


def _source_modules() -> list[str]:
    """Every module of the source package (walking i2scli/ in the tree), but the entry point that
    runs the command line on import."""
    return sorted(
        m.name for m in pkgutil.walk_packages([str(ROOT / "i2scli")], prefix="i2scli.")
        if not m.name.endswith(".__main__")
    )


IMPORT_EACH = """
import importlib, importlib.util, json, sys
out = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
        out[name] = ["ok", sys.modules[name].__file__]
    except ModuleNotFoundError as e:
        spec = importlib.util.find_spec(name) if e.name != name else None
        out[name] = ["missing " + str(e.name), spec.origin if spec else None]
print(json.dumps(out))
"""


def _import_outcome(name: str) -> str:
    try:
        importlib.import_module(name)
        return "ok"
    except ModuleNotFoundError as e:
        return f"missing {e.name}"


def test_every_module_imports_from_the_installed_wheel(installed, tmp_path):
    modules = _source_modules()
    assert {"i2scli.cli", "i2scli.link.stream", "i2scli.sim.board", "i2scli.targets.rp2"} <= set(modules)
    modules.append("i2scli.firmware")  # firmware/ is mapped there; its modules are MicroPython
    r = _run_installed(installed, ["-c", IMPORT_EACH, json.dumps(modules)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    for name in modules:
        outcome, origin = got[name]
        # an optional dependency that is not installed fails the same way from the source tree
        assert outcome == _import_outcome(name), (name, outcome, origin)
        assert origin and Path(origin).is_relative_to(installed), (name, origin)


def test_the_installed_wheel_answers_its_version_and_plays_on_a_virtual_board(installed, tmp_path):
    r = _run_installed(installed, ["-m", "i2scli", "--version"], cwd=tmp_path)
    assert (r.returncode, r.stdout.strip()) == (0, f"i2s, version {i2scli.__version__}"), r.stderr
    capture = tmp_path / "tx.wav"
    r = _run_installed(
        installed, ["-m", "i2scli", "play", "-p", f"sim://fast?tx_capture={capture}", "--tone", "440", "-d", "0.25s"],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    import soundfile as sf

    info = sf.info(str(capture))
    assert info.frames >= info.samplerate // 4, info
