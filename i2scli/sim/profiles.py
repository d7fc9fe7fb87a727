"""Board profiles for the virtual board: what each imitated board is and what its link carries.

Every number here is explained, with its source, in docs/sim.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from i2scli.sim import i2s_pins
from i2scli.sim import pins as pin_tables

USB_FS_OUT = 1_000_000  # board -> host over USB full speed CDC, bytes/s (12 Mbit/s bus, shared)
# The full-speed bus both directions share: at most 19 bulk transactions of 64 bytes in a 1 ms
# frame (USB 2.0 spec, 5.8.4, Table 5-9), in and out together
USB_FS_BULK = 19 * 64 * 1000
STDIN_IN = 180_000  # host -> board through sys.stdin.buffer (byte-at-a-time in C), bytes/s
VCP_IN = 450_000  # host -> board through pyb.USB_VCP.readinto, ~2.5x the stdin path
UART_115200 = 11_520  # 115200 baud, 8N1: 10 bits per byte
REPL_BAUD = 115200  # esp32 MICROPY_HW_UART_REPL_BAUD (ports/esp32/uart.h), set at power-on
ESP32_STDIN_IN = STDIN_IN  # esp32: sys.stdin.buffer takes bytes one at a time from the 260-byte ring

RELEASE = "1.28.0"  # the MicroPython release every profile imitates (docs/sim.md)

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
    # A UART REPL behind a USB-UART bridge: the wire's byte rate follows the baud rate (8N1,
    # 10 bits a byte) of the host's bridge and of the board's UART, which may differ (garbled).
    # in_rate then caps what the board's stdin path takes per second whatever the baud.
    uart: bool = False
    power_on_baud: int = REPL_BAUD
    # native USB: the full-speed bus's bulk bytes/s, shared by both directions (None: a UART's
    # two wires, or no limit)
    usb_bus: int | None = None


@dataclass(frozen=True)
class I2SRules:
    """How the port's machine.I2S checks its arguments."""

    ids: tuple[int, ...]
    ws_is_sck_plus_1: bool = False  # rp2: PIO needs ws on the pin after sck
    mck: bool = False  # mck= accepted (mimxrt only)
    rates: tuple[int, ...] | None = None  # accepted rates; None = any positive rate
    # the port's I2S pad table, ((bus id, function, mode, pad id), ...) in its own order, looked
    # up with its rules (i2scli/sim/i2s_pins.py); None: any pin the port's Pin takes
    pin_map: tuple | None = None
    # pads machine.I2S takes but cannot drive (esp32 GPIO34-39: input only); they stay inputs
    input_only: tuple = ()


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    platform: str  # sys.platform
    machine: str  # os.uname().machine and sys.implementation._machine
    pins: pin_tables.PinTable  # the names and numbers machine.Pin takes (i2scli/sim/pins.py)
    link: Link
    i2s: I2SRules | None  # None: the port has no machine.I2S
    release: str = RELEASE  # os.uname().release
    vcp: bool = False  # pyb.USB_VCP exists (stm32-based ports)
    dir_pin: object = None  # default codec DIR pin
    sd_net: tuple = ()  # pads wired together as the one SD line (two tied pads on openmv)
    heap: int = 256 * 1024  # MicroPython heap, bytes
    native: bool = True  # a native code emitter (viper); False: a build without MICROPY_EMIT_NATIVE
    uart_repl: bool = False  # machine.UART exists and UART(0) is a REPL UART (esp32 port)
    # machine.Timer's hardware timers (esp32 port: SOC_TIMER_GROUP_TOTAL_TIMERS; 0: no Timer)
    hw_timers: int = 0
    # machine.Timer(-1) soft timers in the pico-sdk's alarm pool (rp2 port's machine_timer.c)
    soft_timers: bool = False
    cpu_hz: int | None = None  # machine.freq() where the port's usual figure is not the board's
    usb_id: tuple[int, int] | None = None  # native USB (VID, PID); bridged boards: the bridge's
    bridge: str | None = None  # default USB-UART bridge (profiles whose link is a UART)

    def board_dict(self) -> dict:
        """The part of the profile the board process needs (JSON-able)."""
        d = asdict(self)
        d.pop("link")
        d.pop("usb_id")
        d["pins"] = self.pins.board_dict()
        d["sd_net"] = list(self.sd_net)
        return d


# the stm32 ports' USB CDC: a 1 kB input buffer that drops what does not fit, pyb.USB_VCP's faster path
STM32_USB = Link(STDIN_IN, USB_FS_OUT, 1024, "drop", vcp_in_rate=VCP_IN, usb_bus=USB_FS_BULK)
# the TinyUSB ports (rp2, mimxrt, alif, esp32s3's native USB): a 512-byte buffer that holds the
# host back, wiped by Ctrl-C
TINYUSB = Link(STDIN_IN, USB_FS_OUT, 512, "block", ctrl_c_wipes_input=True, usb_bus=USB_FS_BULK)

PROFILES: dict[str, Profile] = {
    "openmv": Profile(
        name="openmv",
        description="OpenMV Cam H7 Plus (stm32 port): I2S(2) on P2/P3, TX on P0, RX on P1",
        platform="pyboard",
        machine="OpenMV4P-H7 with STM32H743",
        pins=pin_tables.OPENMV4P,
        link=STM32_USB,
        i2s=I2SRules(ids=(2,), pin_map=i2s_pins.OPENMV4P),
        vcp=True,
        dir_pin="P4",
        sd_net=("P0", "P1"),
        heap=256 * 1024,
        usb_id=(0x1209, 0xABD1),
    ),
    "stm32": Profile(
        name="stm32",
        description="pyboard v1.1 (stm32 port): I2S(2) on Y6 (SCK), Y5 (WS), Y8 (SD)",
        platform="pyboard",
        machine="PYBv1.1 with STM32F405RG",
        pins=pin_tables.PYBV11,
        link=STM32_USB,
        i2s=I2SRules(ids=(2,), pin_map=i2s_pins.PYBV11),
        vcp=True,
        dir_pin="Y4",
        heap=100 * 1024,
        usb_id=(0xF055, 0x9800),
    ),
    "pybd": Profile(
        name="pybd",
        description="pyboard D SF2W (stm32 port): I2S(1) on X6 (SCK), X5 (WS), X8 (SD); I2S(2) on Y6, Y5, Y8",
        platform="pyboard",
        machine="PYBD-SF2W with STM32F722IEK",
        pins=pin_tables.PYBD_SF2,
        link=STM32_USB,
        i2s=I2SRules(ids=(1, 2), pin_map=i2s_pins.PYBD_SF2),
        vcp=True,
        dir_pin="Y4",
        heap=160 * 1024,
        cpu_hz=120_000_000,
        usb_id=(0xF055, 0x9800),
    ),
    "rp2": Profile(
        name="rp2",
        description="Raspberry Pi Pico (rp2 port, TinyUSB): I2S on GP16 (SCK), GP17 (WS), GP18 (SD)",
        platform="rp2",
        machine="Raspberry Pi Pico with RP2040",
        pins=pin_tables.RPI_PICO,
        link=TINYUSB,
        i2s=I2SRules(ids=(0, 1), ws_is_sck_plus_1=True),
        dir_pin=15,
        heap=192 * 1024,
        soft_timers=True,
        usb_id=(0x2E8A, 0x0005),
    ),
    "esp32": Profile(
        name="esp32",
        description="ESP32 DevKit (esp32 port) behind a CP2102 UART bridge at 115200 baud",
        platform="esp32",
        machine="Generic ESP32 module with ESP32",
        pins=pin_tables.ESP32_GENERIC,
        link=Link(ESP32_STDIN_IN, None, 260, "drop", uart=True),
        i2s=I2SRules(ids=(0, 1), input_only=i2s_pins.ESP32_INPUT_ONLY),
        dir_pin=4,
        heap=110 * 1024,
        uart_repl=True,
        hw_timers=4,
        bridge="cp2102",
    ),
    "esp32s3": Profile(
        name="esp32s3",
        description="ESP32-S3 DevKitC (esp32 port, ESP32_GENERIC_S3) on its native USB (TinyUSB CDC)",
        platform="esp32",
        machine="Generic ESP32S3 module with ESP32-S3",
        pins=pin_tables.ESP32S3_GENERIC,
        link=Link(STDIN_IN, USB_FS_OUT, 260 + 256, "block", ctrl_c_wipes_input=True, usb_bus=USB_FS_BULK),
        i2s=I2SRules(ids=(0, 1)),
        dir_pin=4,
        heap=110 * 1024,
        uart_repl=True,  # ESP32_GENERIC_S3 also keeps a REPL on UART0 (not the host's link)
        hw_timers=4,
        usb_id=(0x303A, 0x4001),
    ),
    "mimxrt": Profile(
        name="mimxrt",
        description="Teensy 4.1 (mimxrt port, TinyUSB): TX I2S(2) D4/D3/D2, RX I2S(1) D21/D20/D8",
        platform="mimxrt",
        machine="Teensy 4.1 with MIMXRT1062DVJ6A",
        pins=pin_tables.TEENSY41,
        link=TINYUSB,
        i2s=I2SRules(
            ids=(1, 2),
            mck=True,
            rates=tuple(MIMXRT_RATES),
            pin_map=i2s_pins.TEENSY41,
        ),
        dir_pin="D6",
        sd_net=("D2", "D8"),
        heap=256 * 1024,
        usb_id=(0xF055, 0x9802),
    ),
    "no-i2s": Profile(
        name="no-i2s",
        description="OpenMV Cam AE3 (alif port): no machine.I2S",
        platform="alif",
        machine="OpenMV AE3 with AE302F80F55D5AE",
        pins=pin_tables.OPENMV_AE3,
        link=TINYUSB,
        i2s=None,
        heap=256 * 1024,
        usb_id=(0x37C5, 0x16E3),
    ),
    "fast": Profile(
        name="fast",
        description="No link limit, for measuring the software (rp2 I2S rules, pins 16/17/18)",
        platform="linux",
        machine="Virtual fast board with MicroPython unix port",
        pins=pin_tables.RPI_PICO,
        link=Link(None, None, 65536, "block"),
        i2s=I2SRules(ids=(0, 1), ws_is_sck_plus_1=True),
        dir_pin=15,
        heap=1024 * 1024,
    ),
}
# A board no preset knows (a CI rig's own): the fast board under another name, so that
# i2s detects nothing and every pin must be given.
PROFILES["custom"] = replace(
    PROFILES["fast"], name="custom",
    description="A custom two-bus board no i2s preset knows: the fast board under another name",
    machine="Custom I2S rig with MicroPython unix port")

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


@dataclass(frozen=True)
class Bridge:
    """A USB-UART bridge between the host and a board's UART REPL (sources in docs/sim.md)."""

    name: str
    description: str
    usb_id: tuple[int, int]
    max_baud: int  # the datasheet's maximum
    latency_s: float  # how long a short read waits in the bridge before the USB host gets it
    packet: int  # bulk IN payload bytes per USB packet; a full packet goes at once
    divisor: str  # how a requested rate becomes the line rate: "an205", "cp2102n", "ch340", "ftdi"

    def line_rate(self, baud: int) -> int | None:
        """The rate the bridge really puts on the wire when the host asks for `baud`
        (None: none at all, the line is unusable)."""
        if baud <= 0:
            return None
        if self.divisor == "an205":  # CP2102: a fixed table of rates, the nearest above
            for rate, high in CP2102_AN205:
                if baud <= high:
                    return rate
            return CP2102_AN205[-1][0]
        if baud > self.max_baud:
            return None
        if self.divisor == "cp2102n":  # 48 MHz / (2 * prescale * divisor)
            prescale = 4 if baud <= 365 else 1
            div = max(1, round(48_000_000 / (2 * prescale * baud)))
            return 48_000_000 // (2 * prescale * div)
        if self.divisor == "ch340":  # 12 MHz / divisor at the top prescaler
            return 12_000_000 // max(2, round(12_000_000 / baud))
        if self.divisor == "ftdi":  # 3 MHz / (n + k/8), n >= 2; or exactly 3 M or 2 M
            cands = [3_000_000, 2_000_000, 24_000_000 // max(16, round(24_000_000 / baud))]
            return min(cands, key=lambda r: abs(r - baud))
        return baud


# CP2102 baud rate table (Silicon Labs AN205 table 1, as in Linux drivers/usb/serial/cp210x.c
# cp210x_an205_table1): (rate on the wire, highest requested rate that gets it)
CP2102_AN205 = (
    (300, 300), (600, 600), (1200, 1200), (1800, 1800), (2400, 2400), (4000, 4000),
    (4800, 4803), (7200, 7207), (9600, 9612), (14400, 14428), (16000, 16062), (19200, 19250),
    (28800, 28912), (38400, 38601), (51200, 51558), (56000, 56280), (57600, 58053),
    (64000, 64111), (76800, 77608), (115200, 117028), (128000, 129347), (153600, 156868),
    (230400, 237832), (250000, 254234), (256000, 273066), (460800, 491520), (500000, 567138),
    (576000, 670254), (921600, 1_000_000),
)

BRIDGES: dict[str, Bridge] = {
    "cp2102": Bridge("cp2102", "Silicon Labs CP2102 (ESP32 DevKitC)", (0x10C4, 0xEA60),
                     1_000_000, 0.001, 64, "an205"),
    "cp2102n": Bridge("cp2102n", "Silicon Labs CP2102N", (0x10C4, 0xEA60),
                      3_000_000, 0.001, 64, "cp2102n"),
    "ch340": Bridge("ch340", "WCH CH340", (0x1A86, 0x7523), 2_000_000, 0.001, 32, "ch340"),
    "ft232r": Bridge("ft232r", "FTDI FT232R", (0x0403, 0x6001), 3_000_000, 0.016, 62, "ftdi"),
}
# The USB product string each bridge reports (what `serial.tools.list_ports` shows as `product`):
# CP2102 and CP2102N share a VID:PID, and the host tells them apart by it.
USB_PRODUCT = {"cp2102": "CP2102 USB to UART Bridge Controller", "cp2102n": "CP2102N USB to UART Bridge Controller",
               "ch340": "USB Serial", "ft232r": "FT232R USB UART"}



def get_bridge(name: str) -> Bridge:
    """Look a bridge up by name; a clear ValueError lists the known ones."""
    try:
        return BRIDGES[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown USB-UART bridge {name!r} (known: {', '.join(BRIDGES)})") from None


def usb_id(profile_name: str | None, bridge_name: str | None = None) -> tuple[int, int] | None:
    """The USB (VID, PID) the host sees for a profile: its native USB's, or for a UART REPL its
    bridge's (`bridge_name`, or the profile's default bridge). None when unknown."""
    prof = get_profile(profile_name)
    if prof.link.uart:
        return get_bridge(bridge_name or prof.bridge).usb_id
    if bridge_name:
        raise ValueError(f"board profile {prof.name!r} has native USB, no USB-UART bridge")
    return prof.usb_id
