"""Board profiles for the virtual board: what each imitated board is and what its link carries.

Every number here is explained, with its source, in docs/sim.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from i2scli.sim import pins as pin_tables

USB_FS_OUT = 1_000_000  # board -> host over USB full speed CDC, bytes/s (12 Mbit/s bus, shared)
STDIN_IN = 180_000  # host -> board through sys.stdin.buffer (byte-at-a-time in C), bytes/s
VCP_IN = 450_000  # host -> board through pyb.USB_VCP.readinto, ~2.5x the stdin path
UART_115200 = 11_520  # 115200 baud, 8N1: 10 bits per byte

MIMXRT_RATES = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000]


@dataclass(frozen=True)
class Link:
    """What the USB/UART link between host and board carries."""

    in_rate: int | None  # host -> board bytes/s through sys.stdin; None = unlimited
    out_rate: int | None  # board -> host bytes/s; None = unlimited
    in_buffer: int  # board input buffer, bytes
    overflow: str  # "drop" (bytes that do not fit are lost) or "block" (sender held back)
    vcp_in_rate: int | None = None  # host -> board bytes/s through pyb.USB_VCP (stm32 ports)
    ctrl_c_wipes_input: bool = False  # TinyUSB ports clear the input buffer on Ctrl-C
    stall_drop_s: float = 0.5  # output is dropped once the host has not read for this long


@dataclass(frozen=True)
class I2SRules:
    """How the port's machine.I2S checks its arguments."""

    ids: tuple[int, ...]
    ws_is_sck_plus_1: bool = False  # rp2: PIO needs ws on the pin after sck
    mck: bool = False  # mck= accepted (mimxrt only)
    rates: tuple[int, ...] | None = None  # accepted rates; None = any positive rate
    # mimxrt: fixed pads per (id, mode), by pad id: {"2": {"tx": {"sck": "D4", "ws": "D3", "sd": "D2"}}}
    pads: dict | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    platform: str  # sys.platform
    machine: str  # os.uname().machine and sys.implementation._machine
    release: str  # os.uname().release
    pins: pin_tables.PinTable  # the names and numbers machine.Pin takes (i2scli/sim/pins.py)
    link: Link
    i2s: I2SRules | None  # None: the port has no machine.I2S
    vcp: bool = False  # pyb.USB_VCP exists (stm32-based ports)
    dir_pin: object = None  # default codec DIR pin
    sd_net: tuple = ()  # pads wired together as the one SD line (two tied pads on openmv)
    heap: int = 256 * 1024  # MicroPython heap, bytes

    def board_dict(self) -> dict:
        """The part of the profile the board process needs (JSON-able)."""
        d = asdict(self)
        d.pop("link")
        d["pins"] = self.pins.board_dict()
        d["sd_net"] = list(self.sd_net)
        return d

    def with_link(self, **changes) -> Profile:
        return replace(self, link=replace(self.link, **changes))


PROFILES: dict[str, Profile] = {
    "openmv": Profile(
        name="openmv",
        description="OpenMV Cam H7 Plus (stm32 port): I2S(2) on P2/P3, TX on P0, RX on P1",
        platform="pyboard",
        machine="OpenMV4P-H7 with STM32H743",
        release="1.28.0",
        pins=pin_tables.OPENMV4P,
        link=Link(STDIN_IN, USB_FS_OUT, 1024, "drop", vcp_in_rate=VCP_IN),
        i2s=I2SRules(ids=(2,)),
        vcp=True,
        dir_pin="P4",
        sd_net=("P0", "P1"),
        heap=256 * 1024,
    ),
    "stm32": Profile(
        name="stm32",
        description="pyboard v1.1 (stm32 port): I2S(2) on Y6 (SCK), Y5 (WS), Y8 (SD)",
        platform="pyboard",
        machine="PYBv1.1 with STM32F405RG",
        release="1.28.0",
        pins=pin_tables.PYBV11,
        link=Link(STDIN_IN, USB_FS_OUT, 1024, "drop", vcp_in_rate=VCP_IN),
        i2s=I2SRules(ids=(1, 2)),
        vcp=True,
        dir_pin="Y4",
        heap=100 * 1024,
    ),
    "rp2": Profile(
        name="rp2",
        description="Raspberry Pi Pico (rp2 port, TinyUSB): I2S on GP16 (SCK), GP17 (WS), GP18 (SD)",
        platform="rp2",
        machine="Raspberry Pi Pico with RP2040",
        release="1.28.0",
        pins=pin_tables.RPI_PICO,
        link=Link(STDIN_IN, USB_FS_OUT, 512, "block", ctrl_c_wipes_input=True),
        i2s=I2SRules(ids=(0, 1), ws_is_sck_plus_1=True),
        dir_pin=15,
        heap=192 * 1024,
    ),
    "esp32": Profile(
        name="esp32",
        description="ESP32 DevKit (esp32 port) behind a CP2102 UART bridge at 115200 baud",
        platform="esp32",
        machine="Generic ESP32 module with ESP32",
        release="1.28.0",
        pins=pin_tables.ESP32_GENERIC,
        link=Link(UART_115200, UART_115200, 260, "drop"),
        i2s=I2SRules(ids=(0, 1)),
        dir_pin=4,
        heap=110 * 1024,
    ),
    "mimxrt": Profile(
        name="mimxrt",
        description="Teensy 4.1 (mimxrt port, TinyUSB): TX I2S(2) D4/D3/D2, RX I2S(1) D21/D20/D8",
        platform="mimxrt",
        machine="Teensy 4.1 with MIMXRT1062DVJ6A",
        release="1.28.0",
        pins=pin_tables.TEENSY41,
        link=Link(STDIN_IN, USB_FS_OUT, 512, "block", ctrl_c_wipes_input=True),
        i2s=I2SRules(
            ids=(1, 2),
            mck=True,
            rates=tuple(MIMXRT_RATES),
            pads={
                "1": {"rx": {"sck": "D21", "ws": "D20", "sd": "D8", "mck": "D23"}},
                "2": {"tx": {"sck": "D4", "ws": "D3", "sd": "D2", "mck": "D33"}},
            },
        ),
        dir_pin="D6",
        sd_net=("D2", "D8"),
        heap=256 * 1024,
    ),
    "no-i2s": Profile(
        name="no-i2s",
        description="OpenMV Cam AE3 (alif port): no machine.I2S",
        platform="alif",
        machine="OpenMV AE3 with AE302F80F55D5AE",
        release="1.28.0",
        pins=pin_tables.OPENMV_AE3,
        link=Link(STDIN_IN, USB_FS_OUT, 512, "block", ctrl_c_wipes_input=True),
        i2s=None,
        heap=256 * 1024,
    ),
    "fast": Profile(
        name="fast",
        description="No link limit, for measuring the software (rp2 I2S rules, pins 16/17/18)",
        platform="linux",
        machine="Virtual fast board with MicroPython unix port",
        release="1.28.0",
        pins=pin_tables.RPI_PICO,
        link=Link(None, None, 65536, "block"),
        i2s=I2SRules(ids=(0, 1), ws_is_sck_plus_1=True),
        dir_pin=15,
        heap=1024 * 1024,
    ),
}

DEFAULT_PROFILE = "openmv"


def get_profile(name: str | None) -> Profile:
    """Look a profile up by name; a clear ValueError lists the known ones."""
    name = name or DEFAULT_PROFILE
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown board profile {name!r} (known: {', '.join(PROFILES)})"
        ) from None
