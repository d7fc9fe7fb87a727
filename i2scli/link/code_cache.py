"""The agent's upload pieces kept between runs: making them (minify, parse, cut at statements)
costs the host 0.3-0.4 s of CPU, most of a cold start on a fast link, and they change only
with the firmware sources.

One JSON file per agent version in the user's cache directory (`I2S_CACHE_DIR` overrides it),
beside the link probe's; a file of another version is removed when a new one is written. The
file may hold anything (a crash, a hand edit, a concurrent writer): what is not a list of
strings is made again. It is written to a temporary file and renamed over the old one, so a
reader sees a whole file; concurrent writers may lose each other's entries, which are then made
again. A cache that cannot be written only means making the pieces every time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from i2scli.link.probe_cache import cache_file, replace_json

MAX_FILE_BYTES = 4 << 20  # a version's pieces for every mode are a few hundred kB


def _path(version: str) -> Path:
    return cache_file().parent / f"agent-{version}.json"


def _read(path: Path) -> dict:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_json(path, data, ".agent-")
    except OSError:
        return
    for old in path.parent.glob("agent-*.json"):  # other versions' pieces: never used again
        if old != path:
            try:
                old.unlink()
            except OSError:
                pass


def pieces(version: str, key: str, make: Callable[[], list[str]]) -> list[str]:
    """The pieces `key` names for the agent `version`: from the cache, else made and kept."""
    path = _path(version)
    data = _read(path)
    hit = data.get(key)
    if isinstance(hit, list) and all(isinstance(c, str) for c in hit):
        return hit
    made = make()
    data[key] = made
    _write(path, data)
    return made
