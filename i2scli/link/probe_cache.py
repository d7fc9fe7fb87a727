"""The link probe's result, remembered per port and board for a while: a command that scripts
call in a loop should not spend a probe on every run (issue 13).

One small JSON file in the user's cache directory (`I2S_CACHE_DIR` overrides it). An entry is
keyed on the port and what the board said it is (agent version, platform, machine), the baud
rate in use and the kind of probe (one-way, or two-way: both directions at once), so a
different board, agent or rate is probed again; a stream that under- or overran drops its
entries, and `--probe` ignores them.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

TTL_S = 3600.0  # a cable or hub change within the hour shows as xruns, which drop the entry
MAX_ENTRIES = 64


def cache_file() -> Path:
    base = os.environ.get("I2S_CACHE_DIR")
    if not base:
        import platformdirs

        base = platformdirs.user_cache_dir("i2s")
    return Path(base) / "link-probe.json"


def key(port: str, identity: dict, baud: int | None, two_way: bool = False) -> str:
    """The entry of one board on one port at one rate; `two_way`: the two-way probe's (both
    directions measured at once, for the loop mode), which sits beside the one-way one."""
    who = "|".join(str(identity.get(k)) for k in ("agent", "platform", "machine"))
    return f"{port}|{who}|{baud}" + ("|two-way" if two_way else "")


def _read() -> dict:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(data: dict) -> None:
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".probe-")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)  # parallel boards, parallel processes: whole files only
    except OSError:
        pass  # a read-only home must not stop a command: it only probes every time


def load(k: str) -> dict | None:
    entry = _read().get(k)
    if not isinstance(entry, dict) or time.time() - entry.get("t", 0) > TTL_S:
        return None
    rates = entry.get("rates")
    if not isinstance(rates, dict) or not all(isinstance(rates.get(d), (int, float)) for d in ("up", "down")):
        return None
    return rates


def store(k: str, rates: dict) -> None:
    data = _read()
    data[k] = {"t": time.time(), "rates": {d: rates[d] for d in ("up", "down")}}
    if len(data) > MAX_ENTRIES:  # oldest out
        for old in sorted(data, key=lambda x: data[x].get("t", 0))[: len(data) - MAX_ENTRIES]:
            del data[old]
    _write(data)


def drop(k: str) -> None:
    data = _read()
    if data.pop(k, None) is not None:
        _write(data)
