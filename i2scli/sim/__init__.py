"""The virtual board: real MicroPython behind a pseudo-terminal (see docs/sim.md)."""

import serial

from i2scli.sim.board import VirtualBoard
from i2scli.sim.profiles import PROFILES, get_profile

# `sim://PROFILE?option=value` works anywhere pyserial's serial_for_url is used.
if "i2scli.sim" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("i2scli.sim")

__all__ = ["VirtualBoard", "PROFILES", "get_profile"]
