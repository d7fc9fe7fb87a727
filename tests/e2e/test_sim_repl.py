"""The virtual board's REPL against real clients: mpremote's CLI and its serial transport."""

import time

import pytest
import serial
from conftest import mpremote


@pytest.mark.slow
def test_mpremote_exec_eval_run_soft_reset(sim, tmp_path):
    board = sim("rp2")
    r = mpremote("connect", board.path, "exec", "import sys; print(sys.implementation.name, sys.platform)")
    assert r.stdout == b"micropython rp2\r\n"
    assert mpremote("connect", board.path, "eval", "6*7").stdout == b"42\r\n"
    script = tmp_path / "hello.py"
    script.write_text("for i in range(3):\n    print('line', i)\n")
    assert mpremote("connect", board.path, "run", str(script)).stdout == b"line 0\r\nline 1\r\nline 2\r\n"
    # mpremote soft-resets on connect unless told to resume, as on a real board
    mpremote("connect", board.path, "exec", "x = 5")
    assert mpremote("connect", board.path, "resume", "eval", "x").stdout == b"5\r\n"
    r = mpremote("connect", board.path, "resume", "soft-reset", "exec", "print('x' in globals())")
    assert r.stdout == b"False\r\n"
    assert "rp2 board ran" in board.stop()


@pytest.mark.slow
def test_errors_come_back_as_tracebacks(sim):
    board = sim("openmv")
    r = mpremote("connect", board.path, "exec", "1/0", check=False)
    assert r.returncode == 1
    assert b"ZeroDivisionError" in r.stdout + r.stderr


@pytest.mark.slow
def test_sim_url_through_pyserial(transport):
    t = transport("sim://esp32")
    t.enter_raw_repl()
    assert t.eval("__import__('sys').platform") == "esp32"
    assert t.exec("import os; print(os.uname().machine)") == b"Generic ESP32 module with ESP32\r\n"
    assert t.eval("1+1") == 2


@pytest.mark.slow
def test_ctrl_c_interrupts_running_code(transport, sim):
    board = sim("rp2")
    t = transport(board.path)
    t.enter_raw_repl()
    t.exec_raw_no_follow("while True: pass")
    time.sleep(0.3)
    t.serial.write(b"\x03")
    out, err = t.follow(timeout=5)
    assert out == b""
    assert b"KeyboardInterrupt" in err and b"Traceback" in err


@pytest.mark.slow
def test_ctrl_c_is_data_once_kbd_intr_is_off(transport, sim):
    board = sim("rp2")
    t = transport(board.path)
    t.enter_raw_repl()
    t.exec_raw_no_follow(
        "import micropython, sys\n"
        "micropython.kbd_intr(-1)\n"
        "b = sys.stdin.buffer.read(3)\n"
        "micropython.kbd_intr(3)\n"
        "print(list(b))\n")
    time.sleep(0.2)
    t.serial.write(b"\x03\x03\x03")
    out, err = t.follow(timeout=5)
    assert (out, err) == (b"[3, 3, 3]\r\n", b"")


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["fast", "openmv"])
def test_all_byte_values_pass_both_ways(transport, sim, profile):
    board = sim(profile)
    t = transport(board.path)
    t.enter_raw_repl()
    t.exec_raw_no_follow(
        "import micropython, sys\n"
        "micropython.kbd_intr(-1)\n"
        "b = bytearray(256)\n"
        "sys.stdin.buffer.readinto(b, 256)\n"
        "sys.stdout.buffer.write(b)\n"
        "micropython.kbd_intr(3)\n")
    time.sleep(0.2)
    every = bytes(range(256))
    t.serial.write(every)
    t.serial.timeout = 5
    # the output holds 0x04, so read it raw rather than with follow()
    assert t.serial.read(256) == every
    assert t.serial.read(3) == b"\x04\x04>"


@pytest.mark.slow
def test_board_filesystem_survives_soft_reset(sim, tmp_path):
    board = sim("rp2")
    mod = tmp_path / "blink.py"
    mod.write_text("WHO = 'blink module'\n")
    mpremote("connect", board.path, "fs", "cp", str(mod), ":blink.py")
    r = mpremote("connect", board.path, "soft-reset", "exec", "import blink; print(blink.WHO)")
    assert r.stdout == b"blink module\r\n"
    assert b"blink.py" in mpremote("connect", board.path, "fs", "ls").stdout


def test_port_is_exclusive(sim):
    board = sim("rp2")
    first = serial.Serial(board.path, exclusive=True)
    try:
        with pytest.raises(serial.SerialException):
            serial.Serial(board.path, exclusive=True)
    finally:
        first.close()
