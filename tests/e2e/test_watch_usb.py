"""A host killed mid-frame on a native-USB rp2: the agent waits in a blocking stdin read for the
rest of the frame with Ctrl-C off. Its Watch (firmware/i2s_link.py) ends that read as on esp32,
with what v1.28's rp2 port has: a soft Timer(-1) whose callback the stdin loop runs, and a Ctrl-C
typed through os.dupterm (docs/protocol.md, *Watchdog*; the model: docs/sim.md)."""

from __future__ import annotations

import pytest
from conftest import kill_host_mid_frame, mpremote, raw_prompt


@pytest.mark.slow
def test_killed_host_mid_frame_leaves_the_rp2_at_its_repl_for_mpremote(sim):
    board = sim("rp2", capture=False)
    killed = kill_host_mid_frame(board.path, 16, 17, 18)
    seen, back = raw_prompt(board.path, killed)
    assert seen.endswith(b"\x04>"), seen[-200:]
    assert b"KeyboardInterrupt" in seen, seen[-200:]
    assert back < 1.0 + 2.0, back  # within the watchdog plus 2 s
    assert mpremote("connect", board.path, "exec", "print('back')").stdout == b"back\r\n"
    board.stop()
    ev = board.events()
    assert [e["byte"] for e in ev if e["ev"] == "dupterm_in"] == [3]  # the Watch's own Ctrl-C ended the read
