"""A rig file: the boards of a test rig by name, each with the options that reach it.

    # rig.toml (or I2S_RIG); pick a board with --board-name NAME (or I2S_BOARD_NAME)
    [boards.left-dac]
    serial = "E6614C311B4F8E2A"   # the port: -p id:SERIAL (or port = "/dev/ttyACM0", "labgrid://...")
    board = "pico"                # any option of the command, by its long name: --board
    tx-sd = 18                    # i2s test's --tx-sd
    limits = "limits/dac.toml"    # a path, relative to the rig file

A key is the long name of a command-line option without its dashes. Each command takes the keys
it has and leaves the rest (a `limits` for `i2s test` is nothing to `i2s play`); a key no
command has is an error. What is given on the command line, or in an I2S_* variable, wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2scli.errors import worded
from i2scli.tomlfile import read_toml

PATH_KEYS = ("limits", "junit", "plot", "save-recording")  # file names, relative to the rig file


@dataclass(frozen=True)
class RigBoard:
    """One board of a rig: its `name` and `options` (long option name -> value)."""

    name: str
    options: dict[str, Any]


def load(path: str | Path) -> dict[str, RigBoard]:
    """The boards of the rig file at `path`, by name. ValueError (one line) if it is not one."""
    data = read_toml(path, "rig file")
    boards = data.get("boards")
    if not isinstance(boards, dict) or not boards:
        raise ValueError(f"{path}: a rig file names its boards in [boards.NAME] tables; it has none")
    out = {}
    base = Path(path).parent
    for name, table in boards.items():
        if not isinstance(table, dict):
            raise ValueError(f"{path}: boards.{name} must be a table ([boards.{name}]), not {table!r}")
        opts = dict(table)
        if "serial" in opts:
            if "port" in opts:
                raise ValueError(f"{path}: boards.{name} gives both serial and port: keep one")
            opts["port"] = f"id:{opts.pop('serial')}"
        for key, value in opts.items():
            if isinstance(value, (dict, list)):
                raise ValueError(f"{path}: boards.{name}.{key} must be a single value, not {value!r}")
        for key in PATH_KEYS:
            if key in opts:
                opts[key] = str(base / str(opts[key]))
        out[name] = RigBoard(name, opts)
    return out


def pick(path: str | Path, name: str | None) -> RigBoard:
    """The board `name` of the rig at `path` (or its only board when `name` is None)."""
    boards = load(path)
    if name is None:
        if len(boards) == 1:
            return next(iter(boards.values()))
        raise worded(ValueError, f"{path} has {len(boards)} boards ({', '.join(boards)}): choose one with ",
                     ("board_name", None))
    if name not in boards:
        raise ValueError(f"{path}: no board named {name!r} (it has {', '.join(boards)})")
    return boards[name]
