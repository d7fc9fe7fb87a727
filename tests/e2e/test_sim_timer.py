"""The esp32 profile's machine.Timer (v1.28's hardware timers), the rp2 profile's (soft timers)
and os.dupterm input, as the
agent's Watch uses them: a timer's soft callback runs while the main code waits in a blocking
stdin read, and a Ctrl-C from a dupterm stream ends that read (docs/sim.md). Real parts only: a
VirtualBoard and mpremote's transport."""

import ast
import time

import pytest
from conftest import ROOT
from mpremote.transport_serial import SerialTransport

from i2scli.sim import VirtualBoard


@pytest.fixture
def repl():
    boards, ts = [], []

    def start(profile="esp32"):
        b = VirtualBoard(profile)
        b.start()
        boards.append(b)
        t = SerialTransport(b.path, baudrate=115200)
        t.enter_raw_repl(soft_reset=False)
        ts.append(t)
        return t

    yield start
    for t in ts:
        t.close()
    for b in boards:
        b.stop()


def run(t, code: str) -> str:
    out, err = t.exec_raw(code, timeout=20)
    assert not err, err.decode()
    return out.decode().strip()


def test_timer_api_as_the_esp32_port_has_it(repl):
    t = repl()
    assert run(t, """
import machine
for bad in ((4,), (-1,)):
    try:
        machine.Timer(*bad)
    except ValueError as e:
        print(e)
tim = machine.Timer(0)
print(tim is machine.Timer(0), machine.Timer.ONE_SHOT, machine.Timer.PERIODIC)
try:
    tim.init(period=10, callback=print, hard=True)
except ValueError as e:
    print(e)
tim.init(mode=machine.Timer.ONE_SHOT, period=250)
print(tim)
tim.deinit()
try:
    tim.value()
except ValueError as e:
    print(e)
""").splitlines() == ["invalid Timer number", "invalid Timer number", "True 0 1", "hard Timers are not implemented",
                      "Timer(0, mode=ONE_SHOT, period=250)", "timer not set"]


def test_timer_api_as_the_rp2_port_has_it(repl):
    # soft timers in the pico-sdk's alarm pool (16 alarms); a hard callback that raises stops its timer
    t = repl("rp2")
    assert run(t, """
import machine, time
try:
    machine.Timer(0)
except ValueError as e:
    print(e)
a = machine.Timer()
print(a is machine.Timer(-1), machine.Timer.ONE_SHOT, machine.Timer.PERIODIC, hasattr(a, "value"))
a.init(mode=machine.Timer.ONE_SHOT, period=250)
print(a)
a.deinit()
n = [0]
def bad(tim):
    n[0] += 1
    raise ValueError("bad")
a.init(period=5, callback=bad, hard=True)
time.sleep_ms(100)
ts = [machine.Timer(period=1000) for _ in range(16)]
try:
    machine.Timer(period=1000)
except OSError as e:
    print(e.errno, n[0])
for x in ts:
    x.deinit()
print(machine.Timer(period=1000))
""").splitlines() == ["Timer doesn't exist", "False 0 1 False", "Timer(mode=ONE_SHOT, tick_hz=1000000, period=250000)",
                      "Uncaught exception in IRQ callback handler", "Traceback (most recent call last):",
                      '  File "<stdin>", line 15, in bad', "ValueError: bad", "12 1",
                      "Timer(mode=PERIODIC, tick_hz=1000000, period=1000000)"]


def test_timer_callbacks_run_while_python_runs_and_while_a_read_waits(repl):
    t = repl()
    t.exec_raw_no_follow("""
import machine, sys, time
n = [0]
def tick(tim):
    n[0] += 1
tim = machine.Timer(0, period=20, callback=tick)
t0 = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t0) < 200:
    pass
busy = n[0]
b = bytearray(1)
sys.stdin.buffer.readinto(b, 1)
waited = n[0] - busy
tim.deinit()
print(busy, waited, time.ticks_diff(time.ticks_ms(), t0))
""")
    time.sleep(0.6)  # the board waits in its read meanwhile
    t.serial.write(b"x")
    out, err = t.follow(10)
    assert not err, err.decode()
    busy, waited, ms = map(int, out.split())
    assert busy >= 200 // 20 - 2  # between bytecodes, as scheduled callbacks run
    assert waited >= (ms - 200) // 20 - 3 >= 15  # in the read's wait, as the port's stdin loop runs them


def test_one_shot_timer_fires_once(repl):
    t = repl()
    assert run(t, """
import machine, time
n = [0]
def tick(tim):
    n[0] += 1
machine.Timer(1).init(mode=machine.Timer.ONE_SHOT, period=30, callback=tick)
time.sleep_ms(300)
print(n[0])
""") == "1"


def _agent_class(name: str) -> str:
    """The source of one class of the agent's link module, to run as the agent runs it."""
    src = (ROOT / "firmware" / "i2s_link.py").read_text()
    node = next(n for n in ast.parse(src).body if isinstance(n, ast.ClassDef) and n.name == name)
    return ast.get_source_segment(src, node)


# the agent's own console that types one Ctrl-C (firmware/i2s_link.py)
KICK = "import io, os, sys, micropython\n" + _agent_class("_Kick").replace("{", "{{").replace("}", "}}") + """
micropython.kbd_intr({intr})
b = bytearray(2)
os.dupterm(_Kick())
try:
    sys.stdin.buffer.readinto(b, 2)
    print('read', list(b))
except KeyboardInterrupt:
    print('interrupted')
print(os.dupterm(None) is not None)
micropython.kbd_intr(3)
"""


def test_ctrl_c_from_a_dupterm_stream_ends_a_waiting_read(repl):
    t = repl()
    t0 = time.monotonic()
    assert run(t, KICK.format(intr=3)).splitlines() == ["interrupted", "True"]
    assert time.monotonic() - t0 < 2.0


def test_other_dupterm_input_is_read_as_console_input(repl):
    t = repl()
    t.exec_raw_no_follow(KICK.format(intr=-1))  # 0x03 is a byte like any other now
    time.sleep(0.3)
    t.serial.write(b"y")
    out, err = t.follow(10)
    assert not err, err.decode()
    assert out.decode().split("\r\n")[:2] == ["read [3, 121]", "True"]
