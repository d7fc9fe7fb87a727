"""The probe cache's file (i2scli/link/probe_cache.py) shared by every `i2s` at once and open
to anything: entries that are not ours are ignored and dropped, a full disk leaves no temporary
file, and concurrent writers merge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import ENV, i2s

from i2scli.link import probe_cache

GOOD = {"up": 150000.0, "down": 900000.0}


def cache() -> Path:
    return Path(os.environ["I2S_CACHE_DIR"]) / "link-probe.json"


def put(data) -> None:
    cache().parent.mkdir(parents=True, exist_ok=True)
    cache().write_text(data if isinstance(data, str) else json.dumps(data))


def leftovers() -> list[str]:
    return sorted(p.name for p in cache().parent.iterdir() if p.name.startswith(".probe-"))


FOREIGN = {
    "string time": {"t": "yesterday", "rates": GOOD},
    "not a dict": "fast",
    "a list": [1, 2],
    "rates not numbers": {"t": 0, "rates": {"up": "1", "down": None}},
    "no rates": {"t": 1e9},
    "bool time": {"t": True, "rates": GOOD},
    "negative rate": {"t": 1e9, "rates": {"up": -1.0, "down": 5.0}},
}


def test_foreign_entries_are_ignored_and_dropped_at_the_next_write():
    now = time.time()
    put({**{f"p|{name}": v for name, v in FOREIGN.items()}, "p|good": {"t": now, "rates": GOOD}})
    for name in FOREIGN:
        assert probe_cache.load(f"p|{name}") is None
    assert probe_cache.load("p|good") == GOOD
    probe_cache.store("p|new", {"up": 1.0, "down": 2.0, "cached": True})
    data = json.loads(cache().read_text())
    assert set(data) == {"p|good", "p|new"}
    assert data["p|new"]["rates"] == {"up": 1.0, "down": 2.0}
    # a drop of a key that is not there still cleans a file that holds foreign entries
    put({"p|x": "junk", "p|good": {"t": now, "rates": GOOD}})
    probe_cache.drop("p|absent")
    assert set(json.loads(cache().read_text())) == {"p|good"}
    assert leftovers() == []


@pytest.mark.parametrize("text", ["{not json", "[1, 2, 3]", "null", '"text"', "\x00\xff" * 10, "[" * 100000])
def test_garbage_file_reads_as_empty_and_is_rewritten(text):
    put(text)
    assert probe_cache.load("p|k") is None
    probe_cache.store("p|k", GOOD)
    assert json.loads(cache().read_text())["p|k"]["rates"] == GOOD
    assert probe_cache.load("p|k") == GOOD


@pytest.mark.slow
@pytest.mark.e2e  # starts a virtual board
def test_a_foreign_entry_does_not_stop_a_stream():
    """The command a user runs, on a port whose cache entry holds a string time: it probes
    again and writes a good entry in its place."""
    port = "sim://rp2"
    r = i2s("play", "--json", "-q", "--tone", "440", "-r", "8000", "-c", "1", "-d", "0.2s", "-p", port, check=0)
    (k,) = json.loads(cache().read_text())
    put({k: {"t": "soon", "rates": GOOD}, "other|x": ["junk"]})
    r = i2s("play", "--json", "-q", "--tone", "440", "-r", "8000", "-c", "1", "-d", "0.2s", "-p", port, check=0)
    assert json.loads(r.stdout)["link_probe"] == "measured"
    data = json.loads(cache().read_text())
    assert list(data) == [k] and isinstance(data[k]["t"], float)


def _run(code: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=ENV,
                       timeout=60)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_a_file_size_limit_leaves_no_temporary_file_and_the_old_cache_whole():
    """The OS refuses the write (RLIMIT_FSIZE: EFBIG, as ENOSPC would): no error, the old file
    as it was, nothing else left in the directory."""
    probe_cache.store("p|old", GOOD)
    before = cache().read_bytes()
    _run("""
        import resource, signal
        from i2scli.link import probe_cache
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8, 8))
        for i in range(5):
            probe_cache.store(f"p|new{i}", {"up": 1.0, "down": 2.0})
    """)
    assert cache().read_bytes() == before
    assert leftovers() == []


def test_a_full_disk_leaves_no_temporary_file(small_disk, monkeypatch):
    """A real full filesystem (a 64 kB tmpfs, filled): store and drop say nothing, leave the
    old cache as it was and no temporary file, run after run."""
    monkeypatch.setenv("I2S_CACHE_DIR", str(small_disk))
    probe_cache.store("p|old", GOOD)
    before = cache().read_bytes()
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    for i in range(5):
        probe_cache.store(f"p|new{i}", GOOD)
    probe_cache.drop("p|old")
    assert cache().read_bytes() == before
    assert leftovers() == []


@pytest.mark.slow
def test_concurrent_writers_keep_every_key():
    """Three processes, each storing 20 keys of its own at the same moment: all 60 are there."""
    start = time.time() + 1.5  # every process imported and waiting by then
    code = """
        import sys, time
        from i2scli.link import probe_cache
        me, start = sys.argv[1], float(sys.argv[2])
        while time.time() < start:
            time.sleep(0.001)
        for i in range(20):
            probe_cache.store(f"w{me}|{i}", {"up": float(i + 1), "down": 1.0})
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(n), repr(start)], env=ENV,
                              stderr=subprocess.PIPE, text=True) for n in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    data = json.loads(cache().read_text())
    assert sorted(data) == sorted(f"w{n}|{i}" for n in range(3) for i in range(20))
    assert all(data[f"w{n}|{i}"]["rates"]["up"] == i + 1 for n in range(3) for i in range(20))
    assert leftovers() == []
