"""Start-up: the commands scripts call in a loop import only what they need."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ENV

HEAVY = ("numpy", "soundfile", "soxr", "rich", "labgrid", "grpc")  # labgrid: only for labgrid://


def imported(*args) -> set[str]:
    """Top-level packages a whole `i2s` command imported, from `python -X importtime`."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "i2scli", *args], capture_output=True, text=True,
                       env=ENV, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    return {m.group(1).split(".")[0] for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", r.stderr, re.M)}


@pytest.mark.parametrize("args", [["--help"], ["devices"], ["devices", "--json"]])
def test_commands_without_a_board_import_nothing_heavy(args):
    assert not imported(*args) & set(HEAVY)


@pytest.mark.slow
@pytest.mark.e2e  # starts a virtual board
def test_info_imports_nothing_heavy(sim):
    board = sim("rp2", capture=False, events=False)
    # stderr is a pipe here: no rich either
    assert not imported("info", "--no-probe", "-p", board.path) & set(HEAVY)
    assert not imported("info", "-p", board.path) & set(HEAVY)
