"""Teensy 4.x: the mimxrt port (pin names only since v1.22)."""

from i2scli.targets.base import Pins, Target


class Teensy41(Target):
    NAME = "teensy41"
    DESCRIPTION = "Teensy 4.x: TX I2S(2) SCK D4, WS D3, SD D2; RX I2S(1) SCK D21, WS D20, SD D8"
    PLATFORM = "mimxrt"
    TX = Pins(2, "D4", "D3", "D2")
    RX = Pins(1, "D21", "D20", "D8")
    LOOP = (TX, RX)  # SAI2 TX, SAI1 RX
    DIR_PIN = "D6"
    TX_DMA_HALF_BYTES = 128  # ports/mimxrt/machine_i2s.c SIZEOF_DMA_BUFFER_IN_BYTES 256, two halves
    STDIN_RING = 512  # TinyUSB CDC RX buffer (docs/sim.md)
    USB_IDS = {(0x16C0, 0x0483): "Teensy"}  # PJRC (Van Ooijen Technische Informatica)


TARGETS = (Teensy41,)
