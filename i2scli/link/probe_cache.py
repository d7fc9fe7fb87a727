"""The link probe's result, remembered per port and board for a while: a command that scripts
call in a loop should not spend a probe on every run.

One small JSON file in the user's cache directory (`I2S_CACHE_DIR` overrides it). An entry is
keyed on the port and what the board said it is (agent version, platform, machine), the baud
rate in use and the kind of probe (one-way, or two-way: both directions at once), so a
different board, agent or rate is probed again; a stream that under- or overran drops its
entries, and `--probe` ignores them.

The file is shared by every `i2s` running at once (parallel boards are parallel processes) and
may hold anything (an older `i2s`, a hand edit, a crash): an entry that is not what this module
writes is ignored and dropped at the next write; garbage in the file reads as an empty cache.
A change is a read-modify-write under an exclusive lock (`flock` on a lock file beside it),
written to a temporary file and renamed over the old one, so concurrent writers merge and a
reader sees a whole file. A cache that cannot be written (read-only home, full disk) only
means probing every time: no error, and no temporary file left behind.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

TTL_S = 3600.0  # a cable or hub change within the hour shows as xruns, which drop the entry
MAX_ENTRIES = 64
MAX_FILE_BYTES = 1 << 20  # 64 entries are a few kB: anything bigger is not ours


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


def _rate(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _stall(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v < 60


def _valid(entry: object) -> bool:
    """An entry as `store` writes it: {"t": seconds, "rates": {"up": B/s, "down": B/s[, "stall": s]}}."""
    if not isinstance(entry, dict):
        return False
    t, rates = entry.get("t"), entry.get("rates")
    return (isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
            and isinstance(rates, dict) and all(_rate(rates.get(d)) for d in ("up", "down"))
            and ("stall" not in rates or _stall(rates["stall"])))


def _read() -> dict:
    """The valid entries of the file; anything else in it is left out."""
    return _read_all()[0]


def _read_all() -> tuple[dict, bool]:
    """(the valid entries, whether the file holds nothing else: no need to rewrite it)."""
    try:
        with open(cache_file(), "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return {}, True
    except OSError:
        return {}, False
    try:
        data = json.loads(raw) if len(raw) <= MAX_FILE_BYTES else None
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        return {}, False
    good = {k: v for k, v in data.items() if isinstance(k, str) and _valid(v)}
    return good, len(good) == len(data)


def _write(data: dict) -> None:
    """Replace the file with `data` (under the caller's lock)."""
    replace_json(cache_file(), data, ".probe-", ".tmp")


def replace_json(path: Path, data: object, prefix: str, suffix: str = "") -> None:
    """Replace the file at `path` with `data` as JSON: a temporary file beside it, renamed, so a
    reader sees a whole file; OSError as the file system says, no temporary file left behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@contextmanager
def _locked() -> Iterator[None]:
    """An exclusive lock on the cache, held for one read-modify-write."""
    import fcntl

    path = cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _update(change: Callable[[dict], bool]) -> None:
    """Read, `change` (True: the file needs writing), write, all under the lock. A cache that
    cannot be locked or written is left as it is: the next command probes again."""
    try:
        with _locked():
            data, clean = _read_all()
            if change(data) or not clean:  # foreign or broken entries are dropped by a rewrite
                _write(data)
    except OSError:
        pass


def load(k: str) -> dict | None:
    entry = _read().get(k)
    if entry is None or time.time() - entry["t"] > TTL_S:
        return None
    return dict(entry["rates"])


def store(k: str, rates: dict) -> None:
    def change(data: dict) -> bool:
        kept = {d: rates[d] for d in ("up", "down")}
        if _stall(rates.get("stall")):
            kept["stall"] = rates["stall"]  # the longest stall the probe saw (seconds): sizes rings
        data[k] = {"t": time.time(), "rates": kept}
        if len(data) > MAX_ENTRIES:  # oldest out
            for old in sorted(data, key=lambda x: data[x]["t"])[: len(data) - MAX_ENTRIES]:
                del data[old]
        return True

    _update(change)


def drop(k: str) -> None:
    _update(lambda data: data.pop(k, None) is not None)
