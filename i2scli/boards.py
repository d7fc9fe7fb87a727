"""Board presets: which I2S bus and pins a board uses, per direction.

The numbers come from docs of each port (see ../shared/design.md and docs/sim.md):
pyboard I2S(2) on Y6/Y5/Y8; Pico GP16/17/18 (rp2 needs ws == sck + 1); ESP32 any GPIO,
32/25/33 are common; Teensy 4.1 TX on I2S(2) D4/D3/D2 and RX on I2S(1) D21/D20/D8 (names: the
mimxrt port takes no pin numbers since v1.22); OpenMV STM32 cams I2S(2) on P2 (SCK), P3 (WS),
P0 (TX SD), P1 (RX SD).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Pins:
    id: int
    sck: object
    ws: object
    sd: object
    mck: object = None


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    tx: Pins
    rx: Pins
    dir_pin: object = None  # the codec's direction pin for half-duplex, when the board has a habit
    ibuf: int = 16384

    def pins(self, mode: str) -> Pins:
        return self.tx if mode == "tx" else self.rx


BOARDS: dict[str, Board] = {
    "openmv": Board("openmv", "OpenMV Cam (STM32): I2S(2), SCK P2, WS P3, SD P0 (TX) / P1 (RX)",
                    Pins(2, "P2", "P3", "P0"), Pins(2, "P2", "P3", "P1"), dir_pin="P4"),
    "pyboard": Board("pyboard", "pyboard v1.x: I2S(2), SCK Y6, WS Y5, SD Y8",
                     Pins(2, "Y6", "Y5", "Y8"), Pins(2, "Y6", "Y5", "Y8"), dir_pin="Y4"),
    "pico": Board("pico", "Raspberry Pi Pico: I2S(0), SCK GP16, WS GP17, SD GP18",
                  Pins(0, 16, 17, 18), Pins(0, 16, 17, 18), dir_pin=15),
    "esp32": Board("esp32", "ESP32 DevKit: I2S(0), SCK 32, WS 25, SD 33",
                   Pins(0, 32, 25, 33), Pins(0, 32, 25, 33), dir_pin=4),
    # any GPIO works on the S3 (its I2S goes through the GPIO matrix); 26-32 belong to the flash
    "esp32s3": Board("esp32s3", "ESP32-S3 DevKitC: I2S(0), SCK 5, WS 6, SD 7",
                     Pins(0, 5, 6, 7), Pins(0, 5, 6, 7), dir_pin=4),
    "virtual": Board("virtual", "the virtual board's fast profile (i2s sim --profile fast): I2S(0) 16/17/18",
                     Pins(0, 16, 17, 18), Pins(0, 16, 17, 18), dir_pin=15),
    "teensy41": Board("teensy41", "Teensy 4.x: TX I2S(2) SCK D4, WS D3, SD D2; RX I2S(1) SCK D21, WS D20, SD D8",
                      Pins(2, "D4", "D3", "D2"), Pins(1, "D21", "D20", "D8"), dir_pin="D6"),
}


def detect(hello: dict) -> Board | None:
    """The preset for the board that said hello, if one fits."""
    platform, machine = hello.get("platform", ""), hello.get("machine", "")
    if platform == "pyboard":
        return BOARDS["openmv" if "OpenMV" in machine else "pyboard"]
    if platform == "rp2":
        return BOARDS["pico"]
    if platform == "esp32":
        return BOARDS["esp32s3" if "ESP32S3" in machine.replace("-", "").upper() else "esp32"]
    if platform == "mimxrt":
        return BOARDS["teensy41"]
    if platform == "linux" and "Virtual" in machine:
        return BOARDS["virtual"]
    return None


# rp2, stm32 (pyboard) and mimxrt feed TX through a 256-byte DMA buffer in two halves, stereo
# frames whatever the format (ports/*/machine_i2s.c SIZEOF_DMA_BUFFER_IN_BYTES, feed_dma); the
# virtual board imitates rp2's. Other ports (esp32: ESP-IDF's DMA descriptors) are not modelled.
TX_DMA_HALF_BYTES = {"rp2": 128, "pyboard": 128, "mimxrt": 128}


def tx_dma_half(hello: dict, bits: int) -> int:
    """Frames in one TX DMA half on this board's port, 0 when not known."""
    platform = hello.get("platform", "")
    if platform == "linux" and "Virtual" in hello.get("machine", ""):
        platform = "rp2"
    half = TX_DMA_HALF_BYTES.get(platform, 0)
    return half // (4 if bits == 16 else 8)


def parse_pin(text: str | None):
    """Pin names as the port spells them: digits are numbers (GPIO 18), else names (P0, Y6)."""
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else text


def resolve(board: Board | None, mode: str, *, id=None, sck=None, ws=None, sd=None, mck=None) -> Pins:
    """The pins to use: the preset's, overridden by what was given. Raises ValueError naming
    what is missing when there is no preset."""
    base = board.pins(mode) if board else Pins(id, sck, ws, sd, mck)
    pins = replace(base, **{k: v for k, v in dict(id=id, sck=sck, ws=ws, sd=sd, mck=mck).items() if v is not None})
    missing = [k for k in ("id", "sck", "ws", "sd") if getattr(pins, k) is None]
    if missing:
        raise ValueError(f"no board preset fits this board: give --board NAME or all of "
                         f"{', '.join('--' + m for m in missing)}")
    return pins
