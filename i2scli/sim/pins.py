"""Pin tables of the imitated boards: which names and numbers `machine.Pin` accepts on each.

Each table is built from the board's real pin file, copied verbatim below with its source,
and read with the rules of MicroPython's `tools/boardgen.py`: a row is `BOARD_NAME,CPU_NAME`;
a name starting with `-` is hidden from Python (a hidden board name is not in `Pin.board` and
`Pin("NAME")` fails; a hidden CPU name is not in `Pin.cpu`; the last row naming a CPU pin
decides whether it is hidden). `Pin("NAME")` looks in the board names first, then the CPU
names, as every port's `pin_find` does.

Each physical pad gets one *id*, the spelling the simulator uses for it in events, I2S pad
checks, `sd_net` and the codec's DIR pin: the pad's number where the port takes numbers, else
its first board name, else its CPU name. So `Pin("GP18")`, `Pin("GPIO18")` and `Pin(18)` are
one pad with id 18 on the Pico, and `Pin("D2")`, `Pin("SD_TX")` and `Pin("GPIO_EMC_04")` are
one pad with id "D2" on the Teensy (where `Pin(2)` fails, as on the real firmware).
"""

from __future__ import annotations

from dataclasses import dataclass

# The MicroPython sources are micropython/micropython at 1c3c201149f3 (2026-08-19) unless said.


@dataclass(frozen=True)
class PinTable:
    """What `machine.Pin` accepts on one board (see the module doc)."""

    source: str  # where the table comes from
    board: tuple  # ((name, pad), ...): Pin.board and Pin("name"), in file order
    cpu: tuple  # (pad, ...): Pin.cpu and Pin("pad")
    ints: tuple  # ((n, pad), ...): Pin(n)
    pads: tuple  # (pad, ...): every pad reachable, in order

    def id_of(self, pad: str):
        """The simulator's id of a pad: its number, else its first board name, else itself."""
        for n, p in self.ints:
            if p == pad:
                return n
        for name, p in self.board:
            if p == pad:
                return name
        return pad

    def ids(self) -> tuple:
        """Every pad's id (what `Profile.pins` used to list)."""
        return tuple(self.id_of(p) for p in self.pads)

    def resolve(self, x):
        """The id of pin `x` (an int or a name the port accepts), or None."""
        if isinstance(x, int) and not isinstance(x, bool):
            return x if any(n == x for n, _ in self.ints) else None
        for name, p in self.board:
            if name == x:
                return self.id_of(p)
        if x in self.cpu:
            return self.id_of(x)
        return None

    def pin_id(self, x):
        """`resolve` for a pin given as text too (a command-line option, a sim:// option):
        "15" is the number 15 where the port takes numbers. None if the port has no such pin."""
        pid = self.resolve(x)
        if pid is None and isinstance(x, str) and x.strip().isdigit():
            pid = self.resolve(int(x))
        return pid

    def board_dict(self) -> dict:
        """The JSON-able form the board runtime reads (machine._configure)."""
        return {
            "board": [[n, self.id_of(p)] for n, p in self.board],
            "cpu": [[p, self.id_of(p)] for p in self.cpu],
            "ints": [[n, n] for n, _ in self.ints],
            "pads": [[self.id_of(p), p] for p in self.pads],
        }


def from_csv(source: str, text: str, *, extra_cpu=(), ints=()) -> PinTable:
    """Read a pins.csv with boardgen's rules. `extra_cpu`: CPU pins available without a row
    (mimxrt's af.csv, rp2's GPIOn, alif's Pn_m); `ints`: (n, cpu pad) pairs Pin(n) takes."""
    order: list[str] = list(extra_cpu)
    hidden: dict[str, bool] = {p: False for p in extra_cpu}
    board: list[tuple[str, str]] = []
    for line in text.strip().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        bname, cname = (x.strip() for x in line.split(","))
        ch = cname.startswith("-")
        cname = cname.lstrip("-")
        if cname not in hidden:
            order.append(cname)
        hidden[cname] = ch  # the last row naming a CPU pin decides
        if bname and not bname.startswith("-"):
            board.append((bname, cname))
    pads = list(order)
    for _, p in ints:
        if p not in hidden:
            pads.append(p)
    return PinTable(
        source=source,
        board=tuple(board),
        cpu=tuple(p for p in order if not hidden[p]),
        ints=tuple(ints),
        pads=tuple(pads),
    )


# -- Teensy 4.1 (mimxrt) ---------------------------------------------------------------------
# ports/mimxrt/boards/TEENSY41/pins.csv; CPU pins: every pad of ports/mimxrt/boards/
# MIMXRT1062_af.csv (mimxrt's make-pins.py makes each of them a Pin.cpu entry).
# Numbers: none. The mimxrt port took Pin(n) as the n-th row of pins.csv (D0..D54) until v1.22;
# commit c0b64a3f23 (ports/mimxrt/pin.c) dropped that, and since then Pin(4) raises
# "ValueError: Pin doesn't exist". So a Teensy pad's id is its first board name ("D4").
TEENSY41_CSV = """
D0,GPIO_AD_B0_03
D1,GPIO_AD_B0_02
D2,GPIO_EMC_04
D3,GPIO_EMC_05
D4,GPIO_EMC_06
D5,GPIO_EMC_08
D6,GPIO_B0_10
D7,GPIO_B1_01
D8,GPIO_B1_00
D9,GPIO_B0_11
D10,GPIO_B0_00
D11,GPIO_B0_02
D12,GPIO_B0_01
D13,GPIO_B0_03
D14,GPIO_AD_B1_02
D15,GPIO_AD_B1_03
D16,GPIO_AD_B1_07
D17,GPIO_AD_B1_06
D18,GPIO_AD_B1_01
D19,GPIO_AD_B1_00
D20,GPIO_AD_B1_10
D21,GPIO_AD_B1_11
D22,GPIO_AD_B1_08
D23,GPIO_AD_B1_09
D24,GPIO_AD_B0_12
D25,GPIO_AD_B0_13
D26,GPIO_AD_B1_14
D27,GPIO_AD_B1_15
D28,GPIO_EMC_32
D29,GPIO_EMC_31
D30,GPIO_EMC_37
D31,GPIO_EMC_36
D32,GPIO_B0_12
D33,GPIO_EMC_07
D34,GPIO_B1_13
D35,GPIO_B1_12
D36,GPIO_B1_02
D37,GPIO_B1_03
D38,GPIO_AD_B1_12
D39,GPIO_AD_B1_13
D40,GPIO_AD_B1_04
D41,GPIO_AD_B1_05
D42,GPIO_SD_B0_03
D43,GPIO_SD_B0_02
D44,GPIO_SD_B0_01
D45,GPIO_SD_B0_00
D46,GPIO_SD_B0_05
D47,GPIO_SD_B0_04
D48,GPIO_EMC_24
D49,GPIO_EMC_27
D50,GPIO_EMC_28
D51,GPIO_EMC_22
D52,GPIO_EMC_26
D53,GPIO_EMC_25
D54,GPIO_EMC_29
DAT1,GPIO_SD_B0_03
DAT0,GPIO_SD_B0_02
CLK,GPIO_SD_B0_01
CMD,GPIO_SD_B0_00
DAT3,GPIO_SD_B0_05
DAT2,GPIO_SD_B0_04
PSRAM_CS,GPIO_EMC_24
QSPI_IO1,GPIO_EMC_27
QSPI_IO2,GPIO_EMC_28
FLASH_CS,GPIO_EMC_22
QSPI_IO0,GPIO_EMC_26
QSPI_CLK,GPIO_EMC_25
QSPI_IO3,GPIO_EMC_29
A0,GPIO_AD_B1_02
A1,GPIO_AD_B1_03
A2,GPIO_AD_B1_07
A3,GPIO_AD_B1_06
A4,GPIO_AD_B1_01
A5,GPIO_AD_B1_00
A6,GPIO_AD_B1_10
A7,GPIO_AD_B1_11
A8,GPIO_AD_B1_08
A9,GPIO_AD_B1_09
A10,GPIO_AD_B0_12
A11,GPIO_AD_B0_13
A12,GPIO_AD_B1_14
A13,GPIO_AD_B1_15
LED,GPIO_B0_03
MCK,GPIO_AD_B1_09
SCK_RX,GPIO_AD_B1_11
WS_RX,GPIO_AD_B1_10
SD_RX,GPIO_B1_00
SCK_TX,GPIO_EMC_06
WS_TX,GPIO_EMC_05
SD_TX,GPIO_EMC_04

-ENET_RESET,-GPIO_B0_14
-ENET_INT,-GPIO_B0_15
-SD_CMD,-GPIO_SD_B0_00
-SD_CLK,-GPIO_SD_B0_01
-SD_DATA0,-GPIO_SD_B0_02
-SD_DATA1,-GPIO_SD_B0_03
-SD_DATA2,-GPIO_SD_B0_04
-SD_DATA3,-GPIO_SD_B0_05
"""
MIMXRT1062_PADS = (
    [f"GPIO_AD_B0_{i:02d}" for i in range(16)]
    + [f"GPIO_AD_B1_{i:02d}" for i in range(16)]
    + [f"GPIO_B0_{i:02d}" for i in range(16)]
    + [f"GPIO_B1_{i:02d}" for i in range(16)]
    + [f"GPIO_EMC_{i:02d}" for i in range(42)]
    + [f"GPIO_SD_B0_{i:02d}" for i in range(6)]
    + [f"GPIO_SD_B1_{i:02d}" for i in range(12)]
    + ["WAKEUP", "PMIC_ON_REQ", "PMIC_STBY_REQ"]
)


TEENSY41 = from_csv(
    "micropython ports/mimxrt/boards/TEENSY41/pins.csv + boards/MIMXRT1062_af.csv",
    TEENSY41_CSV,
    extra_cpu=MIMXRT1062_PADS,
)

# -- Raspberry Pi Pico (rp2) -----------------------------------------------------------------
# ports/rp2/boards/RPI_PICO/pins.csv; CPU pins GPIO0..GPIO29 (NUM_BANK0_GPIOS of the RP2040,
# ports/rp2/boards/make-pins.py), which are also what Pin(n) indexes (ports/rp2/machine_pin.c).
RPI_PICO_CSV = "\n".join(f"GP{n},GPIO{n}" for n in list(range(23)) + [25, 26, 27, 28]) + "\nLED,GPIO25\n"
RPI_PICO = from_csv(
    "micropython ports/rp2/boards/RPI_PICO/pins.csv + ports/rp2/machine_pin.c",
    RPI_PICO_CSV,
    extra_cpu=[f"GPIO{n}" for n in range(30)],
    ints=tuple((n, f"GPIO{n}") for n in range(30)),
)

# -- pyboard v1.1 (stm32) --------------------------------------------------------------------
# ports/stm32/boards/PYBV11/pins.csv. Only pins in the file exist (stm32 make-pins.py); no numbers.
PYBV11_CSV = """
X1,PA0
X2,PA1
X3,PA2
X4,PA3
X5,PA4
X6,PA5
X7,PA6
X8,PA7
X9,PB6
X10,PB7
X11,PC4
X12,PC5
#X13,Reset
#X14,GND
#X15,3.3V
#X16,VIN
X17,PB3
X18,PC13
X19,PC0
X20,PC1
X21,PC2
X22,PC3
#X23,A3.3V
#X24,AGND
Y1,PC6
Y2,PC7
Y3,PB8
Y4,PB9
Y5,PB12
Y6,PB13
Y7,PB14
Y8,PB15
Y9,PB10
Y10,PB11
Y11,PB0
Y12,PB1
#Y13,Reset
#Y14,GND
#Y15,3.3V
#Y16,VIN
SW,PB3
LED_RED,PA13
LED_GREEN,PA14
LED_YELLOW,PA15
LED_BLUE,PB4
MMA_INT,PB2
MMA_AVDD,PB5
SD_D0,PC8
SD_D1,PC9
SD_D2,PC10
SD_D3,PC11
SD_CMD,PD2
SD_CK,PC12
SD,PA8
SD_SW,PA8
USB_VBUS,PA9
USB_ID,PA10
USB_DM,PA11
USB_DP,PA12
"""


def _stm32_cpu_names(csv: str) -> str:
    """stm32's CPU names drop the "P": PA0 is Pin.cpu.A0 (make-pins.py)."""
    return "\n".join(r.replace(",P", ",").replace(",-P", ",-") for r in csv.split())


PYBV11 = from_csv("micropython ports/stm32/boards/PYBV11/pins.csv", _stm32_cpu_names(PYBV11_CSV))

# -- pyboard D SF2W (stm32) ------------------------------------------------------------------
# ports/stm32/boards/PYBD_SF2/pins.csv. Only pins in the file exist (stm32 make-pins.py); no
# numbers. Rows with no board name (",PD1") give a CPU name only.
PYBD_SF2_CSV = """
W3,PE3
W5,PA11
W5B,PI0
W6,PA5
W7,PA4
W7B,PG7
W8,PB11
W9,PA12
W9B,PI1
W10,PA6
W11,PA3
W12,PB10
W14,PA7
W15,PA2
W16,PA15
W17,PA1
W18,PD3
W19,PA0
W20,PD0
W21,PC14
W22,PE12
W22B,PF6
W22C,PF7
W22D,PF10
W23,PE1
W24,PC1
W25,PE0
W26,PC13
W27,PA8
W27B,PC6
W28,PE6
W29,PB3
W30,PE5
W32,PE4
W33,PH2
W34,PH3
W43,PB0
W43B,PC0
W43C,PF9
W43D,PF11
W45,PB12
W45B,PE14
W45C,PH8
W46,PB5
W47,PC5
W47B,PF14
W49,PB13
W50,PB4
W51,PC4
W51B,PF15
W52,PA10
W53,PC2
W53B,PF8
W54,PA9
W55,PB9
W56,PA14
W57,PC3
W57B,PF13
W58,PG11
W59,PB8
W60,PG12
W61,PB7
W62,PD7
W63,PB1
W63B,PD9
W64,PD6
W65,PD8
W66,PG9
W67,PA13
W68,PG10
W70,PB14
W71,PE15
W72,PB15
W73,PH6
W74,PH7
X1,PA0
X2,PA1
X3,PA2
X4,PA3
X5,PA4
X5B,PG7
X6,PA5
X7,PA6
X8,PA7
X9,PB8
X10,PB9
X11,PC4
X11B,PF15
X12,PC5
X12B,PF14
Y1,PA9
Y2,PA10
Y3,PB4
Y4,PB5
Y5,PB12
Y5B,PE14
Y5C,PH8
Y6,PB13
Y7,PC2
Y7B,PF8
Y8,PC3
Y8B,PF13
Y9,PB10
Y10,PB11
Y11,PB0
Y11B,PC0
Y11C,PF9
Y11D,PF11
Y12,PB1
Y12B,PD9
EN_3V3,PF2
PULL_SCL,PF1
PULL_SDA,PH5
LED_RED,PF3
LED_GREEN,PF4
LED_BLUE,PF5
USR,PA13
USB_DM,PA11
USB_DP,PA12
USB_HS_DM,PB14
USB_HS_DP,PB15
-QSPI1_CS,PE13
-QSPI1_CLK,PE11
-QSPI1_D0,PE7
-QSPI1_D1,PE8
-QSPI1_D2,PE9
-QSPI1_D3,PE10
-QSPI2_CS,PB6
-QSPI2_CLK,PB2
-QSPI2_D0,PD11
-QSPI2_D1,PD12
-QSPI2_D2,PE2
-QSPI2_D3,PD13
-SD_D0,PG9
-SD_D1,PG10
-SD_D2,PG11
-SD_D3,PG12
-SD_CMD,PD7
-SD_CK,PD6
SD_SW,PA14
-WL_REG_ON,PD4
-WL_HOST_WAKE,PI8
-WL_RFSW_VDD,PI9
-WL_GPIO_1,PI11
-WL_GPIO_2,PI7
-WL_GPIO_4,PI9
-WL_SDIO_0,PC8
-WL_SDIO_1,PC9
-WL_SDIO_2,PC10
-WL_SDIO_3,PC11
-WL_SDIO_CMD,PD2
-WL_SDIO_CLK,PC12
-BT_RXD,PC7
-BT_TXD,PG14
-BT_CTS,PG13
-BT_RTS,PG8
-BT_GPIO_3,PG15
-BT_GPIO_4,PI5
-BT_GPIO_5,PI4
-BT_PCM_SYNC,PE4
-BT_PCM_IN,PE6
-BT_PCM_OUT,PE3
-BT_PCM_CLK,PE5
-BT_I2C_D0,PI10
-BT_REG_ON,PI6
-BT_HOST_WAKE,PD10
-BT_DEV_WAKE,PD5
,PD1
,PD14
,PD15
,PF0
,PF12
,PG0
,PG1
,PG2
,PG3
,PG4
,PG5
,PG6
,PH4
,PH9
,PH10
,PH11
,PH12
,PH13
,PH14
,PH15
,PI2
,PI3
"""
PYBD_SF2 = from_csv("micropython ports/stm32/boards/PYBD_SF2/pins.csv", _stm32_cpu_names(PYBD_SF2_CSV))
# The pyboard-compatible header (X1.., Y1..) names the pads its I2S presets use: make those
# names come first, so a pad's id is its X/Y name (X5, not the W7 row before it).
PYBD_SF2 = PinTable(
    PYBD_SF2.source,
    tuple(sorted(PYBD_SF2.board, key=lambda r: r[0][:1] not in ("X", "Y"))),
    PYBD_SF2.cpu, PYBD_SF2.ints, PYBD_SF2.pads,
)

# -- OpenMV Cam H7 Plus (stm32) --------------------------------------------------------------
# openmv/micropython, branch openmv-1.25.0 (03775bdcbe1a), ports/stm32/boards/OPENMV4P/pins.csv
# (the firmware's MicroPython; openmv/openmv pulls it in as lib/micropython).
OPENMV4P_CSV = """
P0,PB15
P1,PB14
P2,PB13
P3,PB12
P4,PB10
P5,PB11
P6,PA5
P7,PD12
P8,PD13
P9,PG3
P10,PD11
P11,PA13
P12,PA14
P13,-PA0
P14,-PA1
P15,-PA2
P16,-PA3
PA4,PA4
PC8,PC8
PC9,PC9
PC10,PC10
PC11,PC11
PC12,PC12
PD2,PD2
PG7,PG7
LED_IR,PE2
LED_RED,-PC0
LED_GREEN,-PC1
LED_BLUE,-PC2
PA15,PA15
USB_VBUS,-PA9
-USB_DM,-PA11
-USB_DP,-PA12
-USB_ID,-PA10
-QSPIFLASH_CS,-PG6
-QSPIFLASH_SCK,-PF10
-QSPIFLASH_IO0,-PF8
-QSPIFLASH_IO1,-PF9
-QSPIFLASH_IO2,-PF7
-QSPIFLASH_IO3,-PF6
"""
# (the file goes on with 60 hidden -SDRAM_*,-P.. rows, which Python cannot reach)
OPENMV4P = from_csv("openmv/micropython@openmv-1.25.0 ports/stm32/boards/OPENMV4P/pins.csv",
                    _stm32_cpu_names(OPENMV4P_CSV))

# -- OpenMV Cam AE3 (alif) -------------------------------------------------------------------
# ports/alif/boards/OPENMV_AE3/pins.csv; CPU pins P0_0..P15_7 (ports/alif/mcu/make-pins.py).
OPENMV_AE3_CSV = """
USB_D_SEL,P15_0
USB_D_SEL_FB,P15_1
FSYNC,P13_0
IMU_INT1,P15_4
IMU_INT2,P15_5
TOF_I2C_INT,P15_6
LED_RED,P0_0
LED_GREEN,P6_3
LED_BLUE,P6_0
SW,P15_7
FLASH_RESET,P3_3
FLASH_CS,P3_2
FLASH_SCLK_P,P3_0
FLASH_SCLK_N,P3_1
FLASH_DQSM,P1_6
FLASH_D0,P2_0
FLASH_D1,P2_1
FLASH_D2,P2_2
FLASH_D3,P2_3
FLASH_D4,P2_4
FLASH_D5,P2_5
FLASH_D6,P2_6
FLASH_D7,P2_7
BT_UART_RX,P1_4
BT_UART_TX,P1_5
BT_UART_CTS,P6_6
BT_UART_RTS,P6_7
BT_REG_ON,P5_7
BT_DEV_WAKE,P9_2
BT_HOST_WAKE,P13_3
WL_REG_ON,P10_4
WL_HOST_WAKE,P11_0
WL_I2S_SDI,P12_0
WL_I2S_SDO,P12_1
WL_I2S_SCLK,P12_2
WL_I2S_WS,P12_3
WL_IRQ,P9_6
WL_MISO,P12_4
WL_MOSI,P12_5
WL_SCLK,P12_6
WL_CS,P12_7
P0,P5_1
P1,P5_0
P2,P5_3
P3,P5_2
P4,P0_5
P5,P0_4
P6,P7_2
P7,P7_3
P8,P1_2
P9,P1_3
P10,P4_4
P11,P4_7
P13,P4_5
P14,P4_6
UART1_TX,P0_5
UART1_RX,P0_4
UART3_TX,P1_3
UART3_RX,P1_2
UART3_RTS,P7_3
UART3_CTS,P7_2
UART4_TX,P5_1
UART4_RX,P5_0
UART5_TX,P5_3
UART5_RX,P5_2
CAN_TXD,P0_5
CAN_RXD,P0_4
"""
OPENMV_AE3 = from_csv(
    "micropython ports/alif/boards/OPENMV_AE3/pins.csv + ports/alif/mcu/make-pins.py",
    OPENMV_AE3_CSV,
    extra_cpu=[f"P{i}_{j}" for i in range(16) for j in range(8)],
)
# The AE3's header names P0.. sit on pads that other names share (UART4_TX is P0 = P5_1):
# the id of a pad is its first board name in file order, so make P0..P14 come first.
OPENMV_AE3 = PinTable(
    OPENMV_AE3.source,
    tuple(sorted(OPENMV_AE3.board, key=lambda r: not (r[0][0] == "P" and r[0][1:].isdigit()))),
    OPENMV_AE3.cpu, OPENMV_AE3.ints, OPENMV_AE3.pads,
)


# -- ESP32 / ESP32-S3 (esp32) ----------------------------------------------------------------
# ports/esp32/machine_pin.h (MICROPY_HW_ENABLE_GPIOn) as ports/esp32/machine_pin.c's
# machine_pin_find uses it: numbers only; the generic boards have no pins.csv, so every name
# fails ("invalid pin").
def _gpio_table(source: str, numbers) -> PinTable:
    return PinTable(source, (), (), tuple((n, f"GPIO{n}") for n in numbers),
                    tuple(f"GPIO{n}" for n in numbers))


# ESP32 (CONFIG_IDF_TARGET_ESP32, no SPIRAM: 16 and 17 are GPIOs)
ESP32_GENERIC = _gpio_table("micropython ports/esp32/machine_pin.h (ESP32)",
                            list(range(24)) + [25, 26, 27] + list(range(32, 40)))
# ESP32-S3 (ESP32_GENERIC_S3 without SPIRAM, extended IO: 27-32 are the flash's)
ESP32S3_GENERIC = _gpio_table("micropython ports/esp32/machine_pin.h (ESP32S3)",
                              list(range(22)) + [26] + list(range(33, 49)))

TABLES = {
    "openmv": OPENMV4P,
    "stm32": PYBV11,
    "pybd": PYBD_SF2,
    "rp2": RPI_PICO,
    "esp32": ESP32_GENERIC,
    "esp32s3": ESP32S3_GENERIC,
    "mimxrt": TEENSY41,
    "alif": OPENMV_AE3,
}
