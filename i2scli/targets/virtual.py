"""The virtual board's fast profile (`i2s sim --profile fast`): the unix port imitating rp2's
machine.I2S, pins 16/17/18. (The virtual board keeps its own model of each port in
i2scli/sim/; this is only what the host assumes of it, as of any board.)"""

from i2scli.targets.base import Pins, Target


class Virtual(Target):
    NAME = "virtual"
    DESCRIPTION = "the virtual board's fast profile (i2s sim --profile fast): I2S(0) 16/17/18"
    PLATFORM = "linux"
    MACHINE_HAS = "Virtual"
    TX = RX = Pins(0, 16, 17, 18)
    LOOP = (Pins(0, 16, 17, 18), Pins(1, 20, 21, 19))
    DIR_PIN = 15
    TX_DMA_HALF_BYTES = 128  # as rp2's
    STDIN_RING = 32768  # a pipe: the fast profile has no link limit


TARGETS = (Virtual,)
