"""The link probe remembered per port and board (i2scli/link/probe_cache.py): a run in a loop
skips the probe; a different board or agent, an xrun or --probe measures again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import i2s

from i2scli.link import probe_cache

pytestmark = pytest.mark.slow  # every test here takes 1 s or more on a loaded 2-core machine


def play(port, *extra, check=0):
    r = i2s("play", "--json", "--tone", "440", "-r", "8000", "-c", "1", "-d", "0.2s", "-p", port, *extra,
            check=check, timeout=90)
    return json.loads(r.stdout) if check == 0 else r


def entries() -> dict:
    path = Path(os.environ["I2S_CACHE_DIR"]) / "link-probe.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_second_run_remembers_the_probe_and_probe_flag_measures(sim):
    board = sim("rp2", capture=False)
    first = play(board.path)
    assert first["link_probe"] == "measured"
    (key,) = entries()
    assert key.startswith(board.path + "|")
    second = play(board.path)
    assert second["link_probe"] == "remembered" and second["link_rate"] == first["link_rate"]
    assert play(board.path, "--probe")["link_probe"] == "measured"
    assert play(board.path, "--no-probe")["link_probe"] is None
    i2s("play", "--tone", "440", "-p", board.path, "--probe", "--no-probe", check=2)


def test_remembered_rate_is_used_for_the_fit_decision(sim):
    board = sim("rp2", capture=False)
    play(board.path)
    (key,) = entries()
    # a remembered link that carries 1 kB/s: the same 16 kB/s stream is refused without a probe…
    probe_cache.store(key, {"up": 1000.0, "down": 1000.0})
    r = play(board.path, check=4)
    assert "1.0 kB/s" in r.stderr
    # …and --probe measures the real link, which carries it
    assert play(board.path, "--probe")["link_probe"] == "measured"


def test_a_different_board_identity_is_probed_again(sim):
    board = sim("rp2", capture=False)
    play(board.path)
    (key,) = entries()
    port, agent, platform, machine, baud = key.split("|")
    stale = "|".join([port, "0ld0ld0ld0ld", platform, machine, baud])  # the agent of an older i2s
    probe_cache.drop(key)
    probe_cache.store(stale, {"up": 1000.0, "down": 1000.0})
    assert play(board.path)["link_probe"] == "measured"  # not refused: the stale entry is not this board's
    assert key in entries()


def test_a_stream_that_underran_drops_its_entry():
    # the link stalls for 0.6 s mid-stream: the board's 64 ms ring runs dry, the stream goes on
    url = "sim://rp2?fault=stall:at=3s,for=0.6s"
    s = play(url, "-d", "6s", "--ibuf", "2048")  # start-up takes well under 3 s
    assert s["underruns"] > 0
    assert not any(k.startswith(url + "|") for k in entries())
    clean = play("sim://rp2")
    assert clean["underruns"] == 0 and any(k.startswith("sim://rp2|") for k in entries())
