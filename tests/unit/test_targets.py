"""Board targets (i2scli/targets/): one module per board family is all the host knows of a
board, and adding one is all it takes for --board NAME, detection and `i2s test`."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENV

from i2scli import targets
from i2scli.link import agent_code as ac
from i2scli.link import baud
from i2scli.loopback import looptest
from i2scli.targets import boards


def test_every_target_is_complete_and_named_once():
    names = [t.NAME for t in targets.all_targets()]
    assert len(names) == len(set(names)) and {"pico", "pyboard", "openmv", "esp32", "esp32s3", "teensy41",
                                                   "virtual"} <= set(names)
    for t in targets.all_targets():
        assert t.PLATFORM and t.DESCRIPTION and t.TX.sd is not None and t.RX.sd is not None, t
        if t.LOOP:
            assert t.LOOP[0].id != t.LOOP[1].id, t
    assert set(boards.BOARDS) == set(names)
    assert set(looptest.LOOP_PRESETS) == {t.NAME for t in targets.all_targets() if t.LOOP}


def test_port_facts_agree_within_a_port_and_with_the_agent():
    facts = ("TX_DMA_HALF_BYTES", "STDIN_RING", "IDF_DMA_FRAMES")
    for t in targets.all_targets():
        for u in targets.all_targets():
            if t.PLATFORM == u.PLATFORM:
                assert [getattr(t, f) for f in facts] == [getattr(u, f) for f in facts], (t, u)
    # the agent gets the targets' port facts generated into it, as tables by sys.platform
    sent = {name: ac.module_source(name) for name in ("i2s_link", "i2s_meter")}
    tables = {n.targets[0].id: ast.literal_eval(n.value) for text in sent.values() for n in ast.parse(text).body
              if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") in ("_INBUF", "_DMA_HALF", "_IDF_DMA")}
    for t in targets.all_targets():
        assert tables["_INBUF"][t.PLATFORM] == t.STDIN_RING, t
        assert tables["_DMA_HALF"].get(t.PLATFORM, 0) == t.TX_DMA_HALF_BYTES, t
        assert tables["_IDF_DMA"].get(t.PLATFORM, 0) == t.IDF_DMA_FRAMES, t
    assert tables["_IDF_DMA"] == {"esp32": 256} and tables["_INBUF"]["samd"] == 512


def test_detection_and_the_link_tables_come_from_the_targets():
    assert boards.detect({"platform": "pyboard", "machine": "OpenMV4P-H7 with STM32H743"}).name == "openmv"
    assert boards.detect({"platform": "pyboard", "machine": "PYBv1.1 with STM32F405RG"}).name == "pyboard"
    assert boards.detect({"platform": "esp32", "machine": "Generic ESP32S3 module with ESP32-S3"}).name == "esp32s3"
    assert boards.detect({"platform": "esp32", "machine": "Generic ESP32 module with ESP32"}).name == "esp32"
    assert boards.detect({"platform": "alif", "machine": "OpenMV AE3"}) is None
    assert baud.bridge_for(0x1A86, 0x7523).max_baud == 2_000_000
    assert baud.bridge_for(0x10C4, 0xEA60, "CP2102N USB to UART Bridge Controller").name == "CP2102N"
    assert {0x2E8A, 0x303A, 0x16C0, 0xF055, 0x37C5} <= baud.NATIVE_USB_VIDS


RIG = '''
from i2scli.targets.base import Pins, Target


class MyRig(Target):
    NAME = "myrig"
    DESCRIPTION = "our CI rig: I2S(0) 16/17/18 out, I2S(1) 20/21/19 in"
    PLATFORM = "linux"
    MACHINE_HAS = "Custom I2S rig"
    PRIORITY = 2
    TX = RX = Pins(0, 16, 17, 18)
    LOOP = (Pins(0, 16, 17, 18), Pins(1, 20, 21, 19))


TARGETS = (MyRig,)
'''


def _cli_with(extra: Path, *args: str) -> subprocess.CompletedProcess:
    """The real command line, with one more module in i2scli/targets/ (from `extra`)."""
    code = ("import sys, i2scli.targets as t; t.__path__.append(sys.argv[1]); "
            "from i2scli.cli import main; sys.argv = ['i2s', *sys.argv[2:]]; main()")
    return subprocess.run([sys.executable, "-c", code, str(extra), *args], capture_output=True, text=True,
                          timeout=120, env=ENV)


@pytest.mark.slow
@pytest.mark.e2e  # starts a virtual board
def test_a_new_board_is_one_target_module(tmp_path):
    (tmp_path / "myrig.py").write_text(RIG)
    port = "sim://custom?loopback=0%3E1,delay=1ms"
    r = _cli_with(tmp_path, "test", "--help")
    assert "myrig" in r.stdout, r.stdout + r.stderr
    # detected from its HELLO: no pins given
    r = _cli_with(tmp_path, "test", "-p", port, "-r", "16000", "-b", "16", "-c", "1", "-d", "0.5s")
    assert r.returncode == 0, r.stderr
    assert "TX I2S(0) sck=16 ws=17 sd=18 -> RX I2S(1) sck=20 ws=21 sd=19" in r.stderr
    # and by name, for play
    r = _cli_with(tmp_path, "play", "-p", port, "--board", "myrig", "--tone", "440", "-d", "0.2s", "-r", "16000")
    assert r.returncode == 0, r.stderr
    # without the module, the same board has no preset
    r = subprocess.run([sys.executable, "-m", "i2scli", "play", "-p", port, "--board", "myrig", "--tone", "440",
                        "-d", "0.2s"], capture_output=True, text=True, timeout=60, env=ENV)
    assert r.returncode == 2 and "myrig" in r.stderr, r.stderr
