"""Faster UART links: which rate a port's USB-serial bridge can take, and the switch itself.

After HELLO the host proposes a rate, the agent answers at the
old rate and re-times its REPL UART, both confirm at the new rate within 0.5 s, or both go
back to the old one (docs/protocol.md, "BAUD"). The agent puts the old rate back on every
way out, so the REPL, mpremote and the next `i2s` find the board as usual.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import serial

from i2scli import protocol as proto
from i2scli import targets
from i2scli.errors import Worded, worded
from i2scli.link import schema
from i2scli.link.errors import LinkError, frame_json
from i2scli.link.port import Port
from i2scli.protocol import FrameType as T
from i2scli.targets import Bridge
from i2scli.targets import esp32 as esp32_target

REPL_BAUD = 115200  # every MicroPython UART REPL starts here (and mpremote stays here)
CONFIRM_S = 0.5  # the agent's window for the confirmation at the new rate
SETTLE_S = 0.03  # after the agent's answer: its TX FIFO drains and its UART re-times
DRAIN_S = 0.01  # after flush(), before the host's own rate changes: the last bytes leave the bridge


# USB-UART bridges by VID:PID, and the native-USB vendors: from i2scli/targets/ (each board
# family's module says which bridges its boards come with and sources each rate).
BRIDGES: dict[tuple[int, int], Bridge] = targets.bridges()
CP2102N = esp32_target.CP2102N
# Native USB: the board itself is the USB device, and a baud rate means nothing.
NATIVE_USB_VIDS = targets.native_usb_vids()


def bridge_for(vid: int | None, pid: int | None, product: str | None = None) -> Bridge | None:
    if vid is None or pid is None:
        return None
    b = BRIDGES.get((vid, pid))
    if b is not None and (vid, pid) == (0x10C4, 0xEA60) and product and "CP2102N" in product:
        return CP2102N
    return b


def usb_id(port: Port) -> tuple[int, int, str | None] | None:
    """VID, PID and product string of the USB device behind the port, if it has one."""
    ident = getattr(port.serial, "usb_vid_pid", None)  # sim:// ports say which bridge they model
    if ident:
        return ident[0], ident[1], getattr(port.serial, "usb_product", None)
    device = getattr(port.serial, "port", None) or port.name  # hwgrep:// has found its device by now
    if not isinstance(device, str) or "://" in device:
        return None  # rfc2217://, socket://: the bridge, if any, is on another machine
    from serial.tools import list_ports

    real = os.path.realpath(device)
    for p in list_ports.comports():
        if p.vid is not None and (p.device == device or os.path.realpath(p.device) == real):
            return p.vid, p.pid, p.product or p.description
    return None


def parse_setting(text: str | None) -> str | int:
    """`auto`, `off` or a positive integer rate; ValueError otherwise."""
    text = (text or "auto").strip().lower()
    if text in ("auto", "off"):
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise worded(ValueError, ("baud", None), f" must be auto, off or a positive integer rate, not {text!r}")


def plan(port: Port, setting: str | int) -> tuple[int | None, int | None, str | Worded | None]:
    """What to do on this port: (rate to propose or None, the rate in use now or None when the
    link has no baud, a note for the user or None: it names the baud setting as data)."""
    if setting == "off":
        ident = usb_id(port)
        on_uart = ident is not None and bridge_for(*ident) is not None
        return None, REPL_BAUD if on_uart else None, None
    if port.name.startswith("socket://"):
        note = None if setting == "auto" else Worded(("baud", None), " ignored: a socket:// port has no baud rate")
        return None, None, note
    ident = usb_id(port)
    bridge = bridge_for(*ident) if ident else None
    if ident and ident[0] in NATIVE_USB_VIDS and bridge is None:
        note = None if setting == "auto" \
            else Worded(("baud", None), " ignored: the board's own USB port has no baud rate")
        return None, None, note
    if setting == "auto":
        if bridge is None:
            return None, None, None
        return bridge.max_baud, REPL_BAUD, None
    return int(setting), REPL_BAUD, None


def switch(port: Port, hello: dict, decoder: proto.Decoder, rate: int,
           warn: Callable[[str], None] | None = None, old: int = REPL_BAUD) -> int:
    """Move the link from `old` to `rate`; returns the rate in use afterwards (the old one when
    the board, the bridge or the line would not go there: with one warning line)."""
    enc = proto.Encoder(crc=bool(hello.get("crc")))
    port.write(enc.json(T.BAUD, {"baud": rate, "restore": old}))
    answer = _await_baud(port, decoder, 1.0)
    if answer is None:
        raise LinkError(f"the agent on {port.name} did not answer the baud-rate proposal")
    if not answer.get("ok"):
        _say(warn, f"staying at {old} baud: the board cannot change its REPL rate ({answer.get('why', 'refused')})")
        return old
    try:
        port.serial.baudrate = rate
    except (OSError, ValueError) as e:
        _say(warn, f"staying at {old} baud: the port refused {rate} ({e})")
        return _back(port, decoder, enc, old, rate)
    time.sleep(SETTLE_S)
    port.serial.reset_input_buffer()
    port.write(enc.json(T.BAUD, {"baud": rate}))
    confirmed = _await_baud(port, decoder, CONFIRM_S)
    if confirmed is not None and confirmed.get("confirmed") and confirmed.get("baud") == rate:
        return rate
    _say(warn, Worded(f"staying at {old} baud: no answer from the board at {rate} baud "
                      "(the USB-serial bridge or the board cannot run that fast; ", ("baud_n", None), " picks a rate)"))
    return _back(port, decoder, enc, old, rate)


def restore(port: Port, old: int = REPL_BAUD) -> None:
    """The host's side back at the REPL's rate (the agent restores its own as it exits)."""
    try:
        if port.serial.baudrate != old:
            # what we wrote last (an ABORT, a STOP) goes out at the rate the agent listens at:
            # flush() empties the driver, not the bridge's FIFO (nor a pseudo-terminal, whose
            # reader times each byte at the rate it finds): let it leave the wire first
            port.serial.flush()
            time.sleep(DRAIN_S)
            port.serial.baudrate = old
    except (OSError, ValueError, serial.SerialException):
        pass


def _back(port: Port, decoder: proto.Decoder, enc: proto.Encoder, old: int, rate: int) -> int:
    """After a failed confirmation the agent is back at `old` once its window closes; unless it
    did hear us and only its answer was lost: then it is at `rate`. Ask at each."""
    time.sleep(CONFIRM_S)
    for r in (old, rate):
        try:
            port.serial.baudrate = r
        except (OSError, ValueError):
            continue
        port.serial.reset_input_buffer()
        port.write(enc.json(T.BAUD, {"baud": 0}))
        answer = _await_baud(port, decoder, 0.3)
        if answer is not None:
            return answer.get("baud") or old
    raise LinkError(f"lost the board at {port.name} while changing the baud rate: reset the board")


def _await_baud(port: Port, decoder: proto.Decoder, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in decoder.feed(port.read_some()):
            if f.type == T.BAUD:
                return schema.check("BAUD", frame_json(f), port.name)
    return None


def _say(warn: Callable[[str | Worded], None] | None, text: str | Worded) -> None:
    if warn is not None:
        warn(text)
