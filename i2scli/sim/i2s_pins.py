"""Which pads each imitated board's `machine.I2S` takes, as the real port's tables list them.

A table is a tuple of entries `(bus id, function, mode, pad id)` in the port's own order:
function is "sck", "ws", "sd", "mck" (or "extsd" on stm32), mode is "rx"/"tx" where the port's
table has one (mimxrt) and None where it has none (stm32), and the pad id is the simulator's id
of the pad (i2scli/sim/pins.py: "D26" for the Teensy's GPIO_AD_B1_14). The board runtime looks
pads up with the port's rules (i2scli/sim/runtime/_simi2sargs.py, `check_pins`):

- mimxrt (`ports/mimxrt/machine_i2s.c`, `lookup_gpio`): the first entry whose pad, function and
  bus id match; its mode only chooses the SAI's sync mode, except for SD, whose entry's mode
  must be the mode asked for.
- stm32 (`ports/stm32/machine_i2s.c` with `pin_find_af`, `ports/stm32/pin_named_pins.c`): the
  first I2S alternate function of the pad on that bus; its type must be the one asked for.

Boards whose port takes any pin (rp2, esp32) have no table. Sources and MicroPython v1.28.0
line numbers are in docs/sim.md.
"""

from __future__ import annotations

from i2scli.sim import pins as pin_tables

# -- Teensy 4.1 (mimxrt) ---------------------------------------------------------------------
# ports/mimxrt/boards/TEENSY41/mpconfigboard.h, I2S_GPIO_MAP (v1.28.0 lines 92-109): bus id,
# function, mode, CPU pad; the board's pin number in the comment of each row.
_TEENSY41_CPU = (
    (1, "sck", "rx", "GPIO_AD_B1_11"),  # 21
    (1, "ws", "rx", "GPIO_AD_B1_10"),  # 20
    (1, "sd", "rx", "GPIO_AD_B1_12"),  # 38
    (1, "sd", "rx", "GPIO_B1_00"),  # 8
    (1, "sck", "tx", "GPIO_AD_B1_14"),  # 26
    (1, "sck", "tx", "GPIO_B1_02"),  # 36
    (1, "ws", "tx", "GPIO_AD_B1_15"),  # 27
    (1, "ws", "tx", "GPIO_B1_03"),  # 37
    (1, "sd", "tx", "GPIO_AD_B1_13"),  # 39
    (1, "sd", "tx", "GPIO_B1_01"),  # 7
    (1, "mck", "tx", "GPIO_AD_B1_09"),  # 23
    (2, "sck", "tx", "GPIO_EMC_06"),  # 4
    (2, "ws", "tx", "GPIO_EMC_05"),  # 3
    (2, "sd", "tx", "GPIO_EMC_04"),  # 2
    (2, "mck", "tx", "GPIO_EMC_07"),  # 33
)
TEENSY41 = tuple((i, fn, mode, pin_tables.TEENSY41.id_of(pad)) for i, fn, mode, pad in _TEENSY41_CPU)

# -- pyboard v1.1 (stm32) --------------------------------------------------------------------
# ports/stm32/boards/stm32f405_af.csv, the I2S2 cells (AF5 "SPI2_SCK/I2S2_CK", AF6
# "I2S2ext_SD", ...) of the pads ports/stm32/boards/PYBV11/pins.csv names; only I2S2 is built
# (PYBV11/mpconfigboard.h line 68 MICROPY_HW_I2S2; make-pins.py CONDITIONAL_VAR leaves the
# other units' AFs out). make-pins.py reads "I2S2ext_SD" as function I2S, unit 2, type EXTSD.
_PYBV11_CPU = (
    (2, "ws", None, "B9"),  # Y4, AF5 SPI2_NSS/I2S2_WS
    (2, "sck", None, "B10"),  # Y9, AF5 SPI2_SCK/I2S2_CK
    (2, "ws", None, "B12"),  # Y5
    (2, "sck", None, "B13"),  # Y6
    (2, "extsd", None, "B14"),  # Y7, AF6 I2S2ext_SD
    (2, "sd", None, "B15"),  # Y8, AF5 SPI2_MOSI/I2S2_SD
    (2, "extsd", None, "C2"),  # X21
    (2, "sd", None, "C3"),  # X22
    (2, "mck", None, "C6"),  # Y1, AF5 I2S2_MCK
)
PYBV11 = tuple((i, fn, mode, pin_tables.PYBV11.id_of(pad)) for i, fn, mode, pad in _PYBV11_CPU)

# -- pyboard D SF2W (stm32) ------------------------------------------------------------------
# ports/stm32/boards/stm32f722_af.csv, the I2S1 and I2S2 cells of the pads
# ports/stm32/boards/PYBD_SF2/pins.csv names; PYBD_SF2/mpconfigboard.h lines 155-156 build
# I2S1 and I2S2 (I2S3's cells are left out by make-pins.py).
_PYBD_SF2_CPU = (
    (1, "ws", None, "A4"),  # X5, AF5 SPI1_NSS/I2S1_WS
    (1, "sck", None, "A5"),  # X6, AF5 SPI1_SCK/I2S1_CK
    (1, "sd", None, "A7"),  # X8, AF5 SPI1_MOSI/I2S1_SD
    (2, "sck", None, "A9"),  # Y1, AF5 SPI2_SCK/I2S2_CK
    (1, "ws", None, "A15"),  # W16
    (1, "sck", None, "B3"),  # W29
    (2, "ws", None, "B4"),  # Y3, AF7 SPI2_NSS/I2S2_WS
    (1, "sd", None, "B5"),  # Y4
    (2, "ws", None, "B9"),  # X10
    (2, "sck", None, "B10"),  # Y9
    (2, "ws", None, "B12"),  # Y5
    (2, "sck", None, "B13"),  # Y6
    (2, "sd", None, "B15"),  # W72 (USB_HS_DP)
    (2, "sd", None, "C1"),  # W24
    (2, "sd", None, "C3"),  # Y8
    (1, "mck", None, "C4"),  # X11
    (2, "mck", None, "C6"),  # W27B
    (2, "sck", None, "D3"),  # W18
    (2, "ws", None, "I0"),  # W5B
    (2, "sck", None, "I1"),  # W9B
    (2, "sd", None, "I3"),  # a CPU name only
)
PYBD_SF2 = tuple((i, fn, mode, pin_tables.PYBD_SF2.id_of(pad)) for i, fn, mode, pad in _PYBD_SF2_CPU)

# -- OpenMV Cam H7 Plus (stm32, OpenMV's MicroPython) ------------------------------------------
# OpenMV's machine.I2S documentation: I2S(2) shares SPI(2)'s pads, SCK on P2 (B13), WS on P3
# (B12), TX SD on P0 (B15, SPI2_MOSI/I2S2_SDO), RX SD on P1 (B14, SPI2_MISO/I2S2_SDI). The
# firmware's own af table is not in the sources read here (upstream's stm32h743_af.csv spells
# the data pads I2S2_SDO/I2S2_SDI, which upstream make-pins.py does not take as I2S), so either
# data pad passes the check in either mode, as the pads OpenMV documents for data.
_OPENMV4P_CPU = (
    (2, "sck", None, "B13"),  # P2
    (2, "ws", None, "B12"),  # P3
    (2, "sd", None, "B15"),  # P0
    (2, "sd", None, "B14"),  # P1
)
OPENMV4P = tuple((i, fn, mode, pin_tables.OPENMV4P.id_of(pad)) for i, fn, mode, pad in _OPENMV4P_CPU)

# -- ESP32 (esp32) ---------------------------------------------------------------------------
# The GPIO matrix routes I2S to any GPIO. GPIO34-39 are input only (ESP32 datasheet, "GPIO &
# RTC_GPIO": "GPI" pads; ESP-IDF soc/esp32 SOC_GPIO_VALID_OUTPUT_GPIO_MASK leaves them out):
# ESP-IDF's i2s_gpio_check_and_set ignores gpio_set_direction's refusal, so machine.I2S takes
# them without an error and the pad never drives. The ESP32-S3 has no input-only GPIO.
ESP32_INPUT_ONLY = (34, 35, 36, 37, 38, 39)
