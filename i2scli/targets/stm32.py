"""STM32 boards: the pyboard and OpenMV cams (the stm32 port, sys.platform "pyboard")."""

from i2scli.targets.base import Pins, Target


class Pyboard(Target):
    NAME = "pyboard"
    DESCRIPTION = "pyboard v1.x: I2S(2), SCK Y6, WS Y5, SD Y8"
    PLATFORM = "pyboard"
    TX = RX = Pins(2, "Y6", "Y5", "Y8")
    # one I2S bus: PYBV10/PYBV11 build I2S2 only (their mpconfigboard.h, MICROPY_HW_I2S2)
    LOOP = None
    DIR_PIN = "Y4"
    TX_DMA_HALF_BYTES = 128  # ports/stm32/machine_i2s.c SIZEOF_DMA_BUFFER_IN_BYTES 256, two halves
    STDIN_RING = 1024  # the stm32 port's USB CDC RX buffer (docs/sim.md)
    USB_IDS = {(0xF055, None): "MicroPython (pyboard and generic ports)"}


class PybD(Pyboard):
    NAME = "pybd"
    DESCRIPTION = "pyboard D SF2/SF3/SF6: I2S(2), SCK Y6, WS Y5, SD Y8; I2S(1) on X6, X5, X8"
    MACHINE_HAS = "PYBD"
    PRIORITY = 1
    # I2S1 and I2S2 (PYBD_SF2/mpconfigboard.h); X5/X6/X8 carry I2S1_WS/CK/SD (stm32f722_af.csv)
    LOOP = (Pins(1, "X6", "X5", "X8"), Pins(2, "Y6", "Y5", "Y8"))  # not checked on hardware


class OpenMV(Pyboard):
    NAME = "openmv"
    DESCRIPTION = "OpenMV Cam (STM32): I2S(2), SCK P2, WS P3, SD P0 (TX) / P1 (RX)"
    MACHINE_HAS = "OpenMV"
    PRIORITY = 1
    TX = Pins(2, "P2", "P3", "P0")
    RX = Pins(2, "P2", "P3", "P1")
    LOOP = None  # one I2S bus broken out
    DIR_PIN = "P4"
    USB_IDS = {(0x1209, 0xABD1): "OpenMV Cam", (0x37C5, None): "OpenMV Cam"}


TARGETS = (OpenMV, PybD, Pyboard)
