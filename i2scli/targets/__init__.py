"""Board targets: one module per board family, and the boards a command uses (boards, boardinfo).

Each family's module lists its boards in TARGETS, subclasses of base.Target whose class constants say
everything the host assumes of a board: how to detect it, its one-bus and two-bus presets, its
DIR pin habit, and its port's facts (TX DMA, native USB or a USB-UART bridge). boards.py,
looptest's two-bus presets, link/baud.py's tables and the help texts read from here, so a new
board is one file here.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from i2scli.targets.base import Board, Bridge, Pins, Target

__all__ = ["Board", "Bridge", "Pins", "Target", "all_targets", "by_name", "detect", "bridges",
           "native_usb_vids", "port_fact", "port_table", "usb_ids"]

# Vendors whose MicroPython boards are their own USB device though no target here names them
OTHER_USB_IDS = {(0x239A, None): "Adafruit"}
# Arduino boards are their own USB device too, but most run no MicroPython: no baud rate for
# them, and `i2s devices` does not take one for a board
OTHER_NATIVE_VIDS = frozenset({0x2341})


# The REPL stdin ring of ports no target here stands for, which the agent still runs on (docs/sim.md)
OTHER_STDIN_RINGS = {"esp8266": 128, "samd": 512, "nrf": 256}


# Modules of this package that hold no board family: the base class, and the host's use of the
# targets (a command's pins, opening a board), which import more than a target may
NOT_FAMILIES = frozenset({"base", "boards", "boardinfo"})


@cache
def all_targets() -> tuple[type[Target], ...]:
    """Every target of every board family's module in this package, the more specific first."""
    found: list[type[Target]] = []
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if mod in NOT_FAMILIES:
            continue
        for t in getattr(importlib.import_module(f"{__name__}.{mod}"), "TARGETS", ()):
            if t not in found:
                found.append(t)
    return tuple(sorted(found, key=lambda t: -t.PRIORITY))


def by_name(name: str) -> type[Target] | None:
    return next((t for t in all_targets() if t.NAME == name), None)


def names() -> list[str]:
    return sorted(t.NAME for t in all_targets())


def detect(hello: dict) -> type[Target] | None:
    """The target of the board that said hello, if one fits."""
    return next((t for t in all_targets() if t.matches(hello)), None)


def port_fact(platform: str, name: str, default=None):
    """A port fact (e.g. TX_DMA_HALF_BYTES) of any target on `platform`: they agree."""
    return next((getattr(t, name) for t in all_targets() if t.PLATFORM == platform), default)


def port_table(name: str, others: dict | None = None) -> dict[str, object]:
    """A port fact by sys.platform, for the agent to look up where it runs (link/agent_code.py):
    each platform's (their targets agree), then `others`' for ports with no target; a fact of 0
    is left out (the agent's default)."""
    table = {**(others or {}), **{t.PLATFORM: getattr(t, name) for t in all_targets()}}
    return {k: table[k] for k in sorted(table) if table[k]}


@cache
def bridges() -> dict[tuple[int, int], Bridge]:
    out: dict[tuple[int, int], Bridge] = {}
    for t in all_targets():
        out.update(t.BRIDGES)
    return out


@cache
def usb_ids() -> dict[tuple[int, int | None], str]:
    """USB devices that are MicroPython boards (their own USB, or a bridge a board family comes
    with): (VID, PID or None for any) -> what it is, for `i2s devices`."""
    out = dict(OTHER_USB_IDS)
    for t in all_targets():
        out.update(t.USB_IDS)
    from i2scli.targets.esp32 import BRIDGE_LABELS

    out.update(BRIDGE_LABELS)
    return out


@cache
def native_usb_vids() -> frozenset[int]:
    """Vendors whose boards are their own USB device: a baud rate means nothing there."""
    vids = {vid for vid, _ in OTHER_USB_IDS} | OTHER_NATIVE_VIDS
    for t in all_targets():
        vids |= {vid for vid, _ in t.USB_IDS}
    return frozenset(vids)
