"""The two-way link probe: both directions streaming at once, as the loop mode
keeps them, on the virtual boards, against the link model of docs/sim.md ("Both directions at
once"); and its own entry in the probe cache."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from conftest import i2s

from i2scli import protocol as proto
from i2scli.link import connect, probe_cache
from i2scli.sim.board import VirtualBoard
from i2scli.sim.profiles import PROFILES, STDIN_IN, USB_FS_BULK

pytestmark = pytest.mark.slow  # every test here takes 1 s or more on a loaded 2-core machine

# A loaded machine runs the virtual board slower, never faster (each frame of the probe waits for
# the credit of the one before: a round trip through three processes): the model's figure is an
# upper bound that holds exactly (plus the pacers' 2 ms burst over the half-second probe); the
# loose lower bounds only say the probe measured a link at all (a loaded machine was seen at 0.3).
BURST = 1.03
LOW = 0.15


def frame(payload: int) -> int:
    return proto.frame_size(payload)


def two_way(url: str, **kw) -> tuple[dict, dict]:
    with connect(url, **kw) as agent:
        return agent.probe_both(), {"baud": agent.baud, "inbuf": agent.identity["inbuf"]}


def test_rp2_both_ways_at_the_stdin_paths_rate():
    """rp2: the way in is the stdin path (180 000 B/s of frames), the answers ride a bus with room
    to spare, so each way carries the way in's payload share of it, the same both ways."""
    r, _ = two_way("sim://rp2", baud="off")
    p = r["payload"]
    model = STDIN_IN * p / frame(p)  # payload bytes/s
    for way in ("up", "down"):
        assert LOW * model <= r[way] <= BURST * model, (way, r, model)
    assert r["up_bytes"] == r["down_bytes"]  # every frame in is answered


def test_esp32_uart_the_way_back_carries_answers_and_credits():
    """esp32 behind a CP2102 at 921600: each wire is 92 160 B/s on its own (full duplex); the
    way back carries each answer (a frame as long) and the credit for it (one 15-byte CREDIT
    frame a frame: a 128-byte frame passes the agent's quarter-window grant), so it binds."""
    r, link = two_way("sim://esp32", baud="auto")
    assert link["baud"] == 921600
    p = r["payload"]
    wire = 921600 // 10
    credit = frame(4)
    model = wire * p / (frame(p) + credit)
    assert p + proto.HEADER_SIZE + proto.CRC_SIZE > link["inbuf"] // 4  # one credit per frame
    for way in ("up", "down"):
        assert LOW * model <= r[way] <= BURST * model, (way, r, model)


def test_one_usb_bus_carries_both_directions():
    """A board whose stdin and stdout paths each run at 1 MB/s (the fast board's buffers on an
    rp2's USB): alone each way would take 1 MB/s, together they share the full-speed bus, 19
    bulk packets of 64 bytes a 1 ms frame, and the frames both ways add up to at most that."""
    fast = PROFILES["fast"]
    prof = dataclasses.replace(fast, link=dataclasses.replace(fast.link, in_rate=1_000_000, out_rate=1_000_000,
                                                              usb_bus=USB_FS_BULK))
    with VirtualBoard(prof) as board:
        r, _ = two_way(board.path, baud="off")
    p = r["payload"]
    # frame bytes/s both ways, credits left out (a lower figure): the board's own timing of the way
    # in, twice (every frame is answered with one as long, so the way back carries as much)
    assert r["up_bytes"] == r["down_bytes"]
    on_bus = 2 * r["up"] * frame(p) / p
    assert on_bus <= BURST * USB_FS_BULK, r
    assert on_bus >= LOW * USB_FS_BULK, r


def entries() -> dict:
    path = Path(os.environ["I2S_CACHE_DIR"]) / "link-probe.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_the_two_way_probe_has_its_own_cache_entry(sim):
    """`i2s test` remembers the two-way rates beside a play's one-way ones, under a key of its own,
    and judges the loop by them: a remembered two-way link of 1 kB/s refuses what a one-way entry
    of the same board would not."""
    board = sim("rp2", "--loopback", "0>1", capture=False)
    i2s("play", "--json", "--tone", "440", "-r", "8000", "-c", "1", "-d", "0.2s", "-p", board.path, check=0)
    (one_way,) = entries()
    r = i2s("test", "-p", board.path, "--json", "-d", "0.3s", "-r", "8000", "-b", "16", "-c", "1",
            check=None, timeout=120)
    assert r.returncode in (0, 7), r.stderr
    fmt = json.loads(r.stdout.splitlines()[0])["format"]
    keys = set(entries())
    (both,) = keys - {one_way}
    assert both == one_way + "|two-way"
    assert fmt["two_way_probe"]["remembered"] is False
    assert fmt["two_way_probe"]["up"] == pytest.approx(entries()[both]["rates"]["up"], abs=1)
    probe_cache.store(both, {"up": 1000.0, "down": 1000.0})
    r = i2s("test", "-p", board.path, "-r", "8000", "-b", "16", "-c", "1", check=4)
    assert "TX and RX at once" in r.stderr
    assert entries()[one_way]["rates"]["up"] > 100_000  # the one-way entry is not the two-way one
