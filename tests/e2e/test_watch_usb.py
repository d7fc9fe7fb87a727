"""A host killed mid-frame on a native-USB rp2: the agent waits in a blocking stdin read for the
rest of the frame with Ctrl-C off. Its Watch (firmware/i2s_link.py) ends that read as on esp32,
with what v1.28's rp2 port has: a soft Timer(-1) whose callback the stdin loop runs, and a Ctrl-C
typed through os.dupterm (docs/protocol.md, *Watchdog*; the model: docs/sim.md)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import serial
from conftest import ENV, mpremote

HALF_FRAME_HOST = """
import itertools, time
from i2scli.link import connect, stream
sent = []
orig = stream.Stream.send
def send(self, frame):
    sent.append(1)
    if len(sent) < 40:
        return orig(self, frame)
    self.port.write(frame[:len(frame) // 2])
    self.port.serial.flush()
    time.sleep(0.5)  # the pty's reader (the board model) takes them: a pty closed by the kill drops what it holds
    print('stopped', flush=True)
    time.sleep(60)
stream.Stream.send = send
with connect({path!r}, expect={{'mode': 'tx'}}) as a:
    cfg = dict(id=0, sck=16, ws=17, sd=18, bits=16, format='mono', rate=8000, ibuf=4096, payload=96,
               timeout_ms=1000)
    a.play(cfg, itertools.repeat(bytes(960)))
"""


def _raw_prompt(path: str, since: float, limit: float = 20.0) -> tuple[bytes, float]:
    """Listen without writing until the raw REPL's `\\x04>`; what came and when."""
    port = serial.Serial(path, 115200, timeout=0.1)
    seen = b""
    while not seen.endswith(b"\x04>") and time.monotonic() - since < limit:
        seen += port.read(4096)
    port.close()
    return seen, time.monotonic() - since


@pytest.mark.slow
def test_killed_host_mid_frame_leaves_the_rp2_at_its_repl_for_mpremote(sim):
    board = sim("rp2", capture=False)
    host = subprocess.Popen([sys.executable, "-c", HALF_FRAME_HOST.format(path=board.path)],
                            stdout=subprocess.PIPE, text=True, env=ENV)
    assert host.stdout.readline().split() == ["stopped"]
    host.kill()
    host.wait()
    seen, back = _raw_prompt(board.path, time.monotonic())
    assert seen.endswith(b"\x04>"), seen[-200:]
    assert b"KeyboardInterrupt" in seen, seen[-200:]
    assert back < 1.0 + 2.0, back  # within the watchdog plus 2 s
    assert mpremote("connect", board.path, "exec", "print('back')").stdout == b"back\r\n"
    board.stop()
    ev = board.events()
    assert [e["byte"] for e in ev if e["ev"] == "dupterm_in"] == [3]  # the Watch's own Ctrl-C ended the read
