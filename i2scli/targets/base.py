"""What every board target says about itself: class constants, read without an instance."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pins:
    id: int
    sck: object
    ws: object
    sd: object
    mck: object = None


@dataclass(frozen=True)
class Board:
    """A one-bus preset: what `--board NAME` gives a stream."""

    name: str
    description: str
    tx: Pins
    rx: Pins
    dir_pin: object = None  # the codec's direction pin for half-duplex, when the board has a habit
    ibuf: int | None = None  # a ring in bytes this board always takes; None: sized by time (i2scli/session/ring.py)

    def pins(self, mode: str) -> Pins:
        return self.tx if mode == "tx" else self.rx


@dataclass(frozen=True)
class Bridge:
    """A USB-UART bridge chip a board family comes with, and the fastest rate it takes."""

    name: str
    max_baud: int
    source: str


class Target:
    """One board. A new board is a subclass in a module of i2scli/targets/, listed in that
    module's TARGETS; nothing else needs to change (tests/unit/test_targets.py)."""

    NAME = ""  # --board NAME
    DESCRIPTION = ""
    PLATFORM = ""  # sys.platform of its MicroPython port
    MACHINE_HAS: str | None = None  # os.uname().machine contains this (None: any board of the port)
    PRIORITY = 0  # tried before targets of a lower one (a more specific MACHINE_HAS)
    TX: Pins
    RX: Pins
    LOOP: tuple[Pins, Pins] | None = None  # two-bus preset for `i2s test`: (TX bus, RX bus)
    DIR_PIN: object = None
    IBUF: int | None = None  # a fixed I2S ring for this board (bytes); None: sized by time (i2scli/session/ring.py)
    # port facts (the same for every target of a PLATFORM; tests/unit/test_targets.py holds them so)
    TX_DMA_HALF_BYTES = 0  # the TX DMA half between ring and pins (0: not known)
    STDIN_RING = 256  # bytes the REPL's stdin buffers (the agent's credit window: _INBUF, generated into it)
    # frames in one DMA buffer of a port whose machine.I2S runs ESP-IDF's DMA buffers rather than
    # a ring the DMA takes 128-byte halves from (0: a ring; the agent's _IDF_DMA, generated into it)
    IDF_DMA_FRAMES = 0
    # the board is its own USB device (no baud rate): (VID, PID or None for any) -> what it is
    USB_IDS: dict[tuple[int, int | None], str] = {}
    BRIDGES: dict[tuple[int, int], Bridge] = {}  # USB-UART bridges its boards come with (VID, PID)

    @classmethod
    def matches(cls, hello: dict) -> bool:
        """Whether the board that said HELLO (or the identity) is this one."""
        if hello.get("platform", "") != cls.PLATFORM:
            return False
        return cls.MACHINE_HAS is None or cls.MACHINE_HAS in hello.get("machine", "")

    @classmethod
    def board(cls) -> Board:
        return Board(cls.NAME, cls.DESCRIPTION, cls.TX, cls.RX, cls.DIR_PIN, cls.IBUF)
