"""Raspberry Pi Pico (RP2040/RP2350): the rp2 port."""

from i2scli.targets.base import Pins, Target


class Pico(Target):
    NAME = "pico"
    DESCRIPTION = "Raspberry Pi Pico: I2S(0), SCK GP16, WS GP17, SD GP18"
    PLATFORM = "rp2"
    TX = RX = Pins(0, 16, 17, 18)  # rp2 needs ws == sck + 1 (one PIO program drives both)
    LOOP = (Pins(0, 16, 17, 18), Pins(1, 20, 21, 19))  # two PIO state machines
    DIR_PIN = 15
    # ports/rp2/machine_i2s.c SIZEOF_DMA_BUFFER_IN_BYTES 256, two halves (feed_dma)
    TX_DMA_HALF_BYTES = 128
    STDIN_RING = 512  # TinyUSB CDC RX buffer (docs/sim.md)
    USB_IDS = {(0x2E8A, None): "Raspberry Pi (RP2040/RP2350)"}


TARGETS = (Pico,)
