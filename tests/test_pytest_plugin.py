"""The pytest plugin (`pytest11` entry point `i2s`), run as a rig's test suite runs: pytest in
a subprocess on a test file that uses only the plugin's fixtures, against a virtual loopback."""

from __future__ import annotations

import subprocess
import sys

from conftest import ENV

RIG_TESTS = '''
import numpy as np
import pytest


def test_played_array_comes_back_bit_exact(i2s_board):
    x = np.random.default_rng(1).integers(-20000, 20000, (9600, 1)).astype(np.int16)
    for _ in range(3):  # a loaded machine can starve the virtual board: counted, then run again
        y = i2s_board.playrec(x, 48000)
        if not (i2s_board.last["underruns"] or i2s_board.last["overruns"]):
            break
    assert np.array_equal(y, x)


def test_the_loopback_passes(i2s_loop):
    assert i2s_loop(rate=16000, duration=0.5).passed


def test_an_impossible_limit_fails_with_the_checks_line(i2s_loop):
    i2s_loop(rate=16000, duration=0.5, min_snr=500)


@pytest.mark.i2s
def test_marked():
    pass
'''


def _pytest(tmp_path, *args) -> subprocess.CompletedProcess:
    (tmp_path / "test_rig.py").write_text(RIG_TESTS)
    env = {k: v for k, v in ENV.items() if k != "I2S_TEST_PORT"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs", *args,
                           str(tmp_path / "test_rig.py")], capture_output=True, text=True, timeout=300,
                          env=env, cwd=tmp_path)


def test_the_fixtures_play_record_and_judge_on_a_virtual_loopback(tmp_path):
    r = _pytest(tmp_path, "--i2s-port", "sim://rp2?loopback=0>1")
    assert r.returncode == 1, r.stdout
    assert "1 failed, 3 passed" in r.stdout, r.stdout
    # the red one fails with the checks' own lines, no traceback of the plugin
    assert "FAILED test_rig.py::test_an_impossible_limit_fails_with_the_checks_line" in r.stdout
    assert "FAIL  ch0.snr is " in r.stdout and "below the minimum 500 dB" in r.stdout
    assert "pytest_plugin.py" not in r.stdout


def test_without_a_board_the_tests_skip_saying_why(tmp_path):
    r = _pytest(tmp_path)
    assert r.returncode == 0, r.stdout
    assert "4 skipped" in r.stdout and "no I2S board given (--i2s-port PORT or I2S_TEST_PORT)" in r.stdout
