"""Pin names as the real firmwares have them (i2scli/sim/pins.py), checked from board code
on the virtual board: each profile takes its board's pins.csv names (and numbers where the
port takes numbers), refuses the rest with the port's exception and text, and one pad is one
pin whatever it is called (events, I2S pad checks, the codec's DIR pin)."""

import subprocess
import sys

import pytest
from mpremote.transport import TransportExecError

from i2scli.sim import pins
from i2scli.sim.board import codec_dir_pin_id
from i2scli.sim.profiles import PROFILES

ARGS = "bits=16, format=I2S.STEREO, rate=8000, ibuf=1000)"  # the rest of an I2S(...) the tests make
I2S_TOO = "Pin, I2S"  # error_of's names for code that makes an I2S


def raw(transport, port):
    t = transport(port)
    t.enter_raw_repl()
    return t


def run(t, code):
    return t.exec("from machine import Pin\n" + code).decode().strip()


def error_of(t, code, names="Pin"):
    """The last line of the traceback that board code raises (`names` imported from machine)."""
    with pytest.raises(TransportExecError) as e:
        t.exec(f"from machine import {names}\n" + code)
    lines = e.value.error_output.splitlines()
    assert lines[0] == "Traceback (most recent call last):", lines
    return lines[-1]


def refused(t, cases: dict[str, str], names="Pin") -> None:
    """Each piece of board code raises, the last line of its traceback the one given."""
    for code, said in cases.items():
        assert error_of(t, code, names) == said, code


def events_of(board, ev):
    return [e for e in board.events() if e["ev"] == ev]


def pads_used(board):
    """The board stopped: its I2S inits (events) and the pins board code made outputs, by name."""
    board.stop()
    return events_of(board, "i2s_init"), {e["name"] for e in events_of(board, "pin") if e["mode"] == "out"}


# -- the tables (host side) -------------------------------------------------------------------

def test_tables_give_one_id_per_pad():
    t = pins.TEENSY41
    assert {t.resolve(x) for x in ("D2", "SD_TX", "GPIO_EMC_04")} == {"D2"}
    assert {t.resolve(x) for x in ("D14", "A0", "GPIO_AD_B1_02")} == {"D14"}
    assert {t.resolve(x) for x in ("D23", "MCK", "A9", "GPIO_AD_B1_09")} == {"D23"}
    assert t.resolve("D42") == t.resolve("DAT1") == "D42"
    assert t.resolve("GPIO_B0_14") is None  # hidden in pins.csv
    # mimxrt firmware takes no numbers since v1.22 (c0b64a3f23): neither does the table
    assert t.ints == () and all(t.resolve(n) is None for n in (0, 2, 4, 41, 42))
    assert t.resolve("D55") is None
    p = pins.RPI_PICO
    assert {p.resolve(x) for x in ("GP18", "GPIO18", 18)} == {18}
    assert p.resolve("LED") == 25 and p.resolve("GP23") is None and p.resolve("GPIO23") == 23
    s = pins.PYBV11
    assert s.resolve("B13") == s.resolve("Y6") == "Y6" and s.resolve("A13") == "LED_RED"
    assert s.resolve("X13") is None and s.resolve(1) is None
    o = pins.OPENMV4P
    assert o.resolve("B15") == "P0" and o.resolve("P16") == "P16" and o.resolve("A3") is None
    assert pins.ESP32_GENERIC.resolve(33) == 33 and pins.ESP32_GENERIC.resolve(24) is None
    assert pins.ESP32_GENERIC.resolve("GPIO33") is None
    # what the profiles use is each pad's id, in its spelling (I2S pads too)
    for prof in PROFILES.values():
        pads = [e[3] for e in ((prof.i2s and prof.i2s.pin_map) or ())]
        for p in (prof.dir_pin, *prof.sd_net, *pads):
            if p is not None:
                assert prof.pins.resolve(p) == p, (prof.name, p)


def test_codec_dir_pin_is_any_name_of_the_pad():
    mx, rp = PROFILES["mimxrt"], PROFILES["rp2"]
    assert {codec_dir_pin_id(mx, x) for x in (None, "D6", "GPIO_B0_10")} == {"D6"}
    assert codec_dir_pin_id(mx, "none") is None and codec_dir_pin_id(mx, "D24") == "D24"
    assert {codec_dir_pin_id(rp, x) for x in (None, 15, "15", "GP15", "GPIO15")} == {15}
    assert codec_dir_pin_id(PROFILES["openmv"], "B10") == "P4"
    for prof, bad in ((mx, 6), (mx, "6"), (mx, "GP6"), (rp, "D6"), (PROFILES["stm32"], 4)):
        with pytest.raises(ValueError, match="has no pin"):
            codec_dir_pin_id(prof, bad)


def test_codec_dir_pin_option_refuses_a_pin_the_board_lacks():
    r = subprocess.run([sys.executable, "-m", "i2scli", "sim", "--profile", "mimxrt", "--codec-dir-pin", "6"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--codec-dir-pin" in r.stderr and "has no pin 6" in r.stderr, r.stderr


# -- on the board -----------------------------------------------------------------------------

@pytest.mark.slow
def test_teensy_names(sim, transport):
    board = sim("mimxrt", capture=False)
    t = raw(transport, board.path)
    assert run(t, "print(Pin('D26').name(), Pin.board.D26.name(), Pin.cpu.GPIO_AD_B1_14.name())") \
        == "GPIO_AD_B1_14 GPIO_AD_B1_14 GPIO_AD_B1_14"
    assert run(t, "print(Pin.board.D2 is Pin.cpu.GPIO_EMC_04, Pin('LED').name(), Pin('D54').name())") \
        == "True GPIO_B0_03 GPIO_EMC_29"
    assert run(t, "print(Pin('SD_TX'), Pin.board.MCK)") == "Pin(GPIO_EMC_04) Pin(GPIO_AD_B1_09)"
    for bad in ("Pin('D55')", "Pin('GPIO_B0_14')", "Pin('SD_CMD')", "Pin(42)", "Pin('GP2')", "Pin(None)"):
        assert error_of(t, bad) == "ValueError: Pin doesn't exist", bad
    # the names of one pad are one pin: the I2S pads accept any of them, events say the id
    run(t, "from machine import I2S\n"
           f"a = I2S(2, sck=Pin('D4'), ws=Pin('WS_TX'), sd=Pin('GPIO_EMC_04'), mck=Pin('D33'), mode=I2S.TX, {ARGS}\n"
           f"b = I2S(1, sck=Pin('SCK_RX'), ws=Pin('D20'), sd='D8', mck='MCK', mode=I2S.RX, {ARGS}\n"
           "a.deinit(); b.deinit()\n"
           f"a = I2S(2, sck='SCK_TX', ws='D3', sd='SD_TX', mck=Pin.cpu.GPIO_EMC_07, mode=I2S.TX, {ARGS}\n"
           "a.deinit()\n"
           "Pin('GPIO_B0_10', Pin.OUT, value=1)\n")
    assert error_of(t, f"I2S(2, sck=Pin('D5'), ws=Pin('D3'), sd=Pin('D2'), mode=I2S.TX, {ARGS}", I2S_TOO) \
        == "ValueError: invalid SCK pin"
    inits, outputs = pads_used(board)
    assert [(e["sck"], e["ws"], e["sd"], e["mck"]) for e in inits] == [
        ("D4", "D3", "D2", "D33"), ("D21", "D20", "D8", "D23"), ("D4", "D3", "D2", "D33")]
    assert outputs == {"D6"}


@pytest.mark.slow
def test_teensy_takes_no_numbers(sim, transport):
    """mimxrt firmware since v1.22 (micropython c0b64a3f23, ports/mimxrt/pin.c) has no Pin(n):
    Pin(4) and an I2S given numbers fail as on the real board."""
    board = sim("mimxrt", capture=False, events=False)
    t = raw(transport, board.path)
    for bad in ("Pin(4)", "Pin(0)", "Pin(2)", "Pin(41)", "Pin(6, Pin.OUT)"):
        assert error_of(t, bad) == "ValueError: Pin doesn't exist", bad
    for sck, ws, sd in (("4", "3", "2"), ("Pin('D4')", "3", "Pin('D2')"), ("Pin('D4')", "Pin('D3')", "2")):
        assert error_of(t, f"I2S(2, sck={sck}, ws={ws}, sd={sd}, mode=I2S.TX, {ARGS}", I2S_TOO) \
            == "ValueError: Pin doesn't exist", (sck, ws, sd)


@pytest.mark.slow
@pytest.mark.parametrize("dir_pin", ["D6", "GPIO_B0_10"])
def test_teensy_codec_dir_pin_by_any_name(sim, transport, dir_pin):
    """--codec-dir-pin goes through the pin table: D6 and GPIO_B0_10 are the pad board code
    drives as Pin('D6'), so DIR follows it in the VCD."""
    vcdvcd = pytest.importorskip("vcdvcd")
    board = sim("mimxrt", "--codec-dir-pin", dir_pin, capture=False, events=False, vcd=True)
    t = raw(transport, board.path)
    run(t, "import time\np = Pin('D6', Pin.OUT, value=1)\ntime.sleep_ms(5)\np.value(0)\ntime.sleep_ms(5)\n")
    t.exit_raw_repl()
    t.close()
    board.stop()
    levels = [v for _, v in vcdvcd.VCDVCD(board.files["vcd"])["board.dir"].tv]
    assert levels[-2:] == ["1", "0"], levels


@pytest.mark.slow
def test_pico_names(sim, transport):
    board = sim("rp2", capture=False)
    t = raw(transport, board.path)
    assert run(t, "print(Pin('GP18').name(), Pin('GPIO18').name(), Pin(18).name(), Pin('LED').name(), "
                  "Pin.board.GP18 is Pin.cpu.GPIO18, Pin('GPIO29').name())") \
        == "GPIO18 GPIO18 GPIO18 GPIO25 True GPIO29"
    refused(t, {
        "Pin('GP23')": 'ValueError: unknown named pin "GP23"',
        "Pin('X1')": 'ValueError: unknown named pin "X1"',
        "Pin(30)": "ValueError: invalid pin",
        "Pin(-1)": "ValueError: invalid pin",
        "Pin(1.5)": "ValueError: invalid pin",
    })
    run(t, "from machine import I2S\n"
           f"a = I2S(0, sck=Pin('GP16'), ws=Pin('GPIO17'), sd=Pin('GP18'), mode=I2S.TX, {ARGS}\n"
           "a.deinit()\n"
           f"a = I2S(0, sck=Pin(16), ws=Pin(17), sd=Pin(18), mode=I2S.TX, {ARGS}\n"
           "a.deinit()\n"
           "Pin('GP15', Pin.OUT, value=1)\n")
    assert error_of(t, f"I2S(0, sck=Pin('GP16'), ws=Pin('GP18'), sd=Pin('GP19'), mode=I2S.TX, {ARGS}", I2S_TOO) \
        == "ValueError: invalid ws (must be sck+1)"
    inits, outputs = pads_used(board)
    assert [(e["sck"], e["ws"], e["sd"]) for e in inits] == [(16, 17, 18), (16, 17, 18)]
    assert outputs == {15}


@pytest.mark.slow
def test_pyboard_names(sim, transport):
    board = sim("stm32", capture=False, events=False)
    t = raw(transport, board.path)
    assert run(t, "print(Pin('X1').name(), Pin.board.X1.name(), Pin.cpu.A0.name(), Pin('A0').name(), "
                  "Pin.board.X1 is Pin.cpu.A0, Pin.board.LED_RED.name())") == "A0 A0 A0 A0 True A13"
    assert run(t, "print(Pin('Y6'))") == "Pin(Pin.cpu.B13, mode=Pin.IN)"
    assert run(t, "print(Pin.cpu.B3.names())") == "['B3', 'X17', 'SW']"
    refused(t, {
        "Pin('X13')": "ValueError: Pin(X13) doesn't exist",
        "Pin('PA0')": "ValueError: Pin(PA0) doesn't exist",
        "Pin('GP1')": "ValueError: Pin(GP1) doesn't exist",
        "Pin(1)": "TypeError: can't convert 'int' object to str implicitly",
        "Pin.board.X13": "AttributeError: type object 'board' has no attribute 'X13'",
    })
    # the pyboard's I2S(2) pads by any of their names
    run(t, f"from machine import I2S\na = I2S(2, sck=Pin.cpu.B13, ws=Pin('B12'), sd=Pin.board.Y8, mode=I2S.TX, {ARGS}\n"
           "a.deinit()\n")
    assert error_of(t, f"I2S(2, sck=Pin('X1'), ws=Pin('Y5'), sd=Pin('Y8'), mode=I2S.TX, {ARGS}", I2S_TOO) \
        == "ValueError: invalid SCK pin"


@pytest.mark.slow
def test_openmv_names(sim, transport):
    board = sim("openmv", capture=False, events=False)
    t = raw(transport, board.path)
    assert run(t, "print(Pin('P0').name(), Pin.board.P0 is Pin.cpu.B15, Pin('P16').name(), "
                  "Pin('LED_RED').name(), Pin('PA4').name())") == "B15 True A3 C0 A4"
    for bad in ("P17", "A3", "C0", "USB_DM", "X1"):  # P16's and LED_RED's CPU names are hidden
        assert error_of(t, f"Pin('{bad}')") == f"ValueError: Pin({bad}) doesn't exist", bad
    assert error_of(t, "Pin(0)") == "TypeError: can't convert 'int' object to str implicitly"
    run(t, f"from machine import I2S\na = I2S(2, sck=Pin('B13'), ws=Pin('P3'), sd=Pin('P0'), mode=I2S.TX, {ARGS}\n"
           "a.deinit()\n")


@pytest.mark.slow
def test_esp32_numbers_only(sim, transport):
    board = sim("esp32", capture=False, events=False)
    t = raw(transport, board.path)
    assert run(t, "print(Pin(33), Pin(1).id(), Pin(39).id(), hasattr(Pin, 'board'), hasattr(Pin, 'cpu'))") \
        == "Pin(33) 1 39 True False"
    for bad in ("24", "28", "40", "-1", "'GPIO33'", "'33'", "'D2'", "True"):
        assert error_of(t, f"Pin({bad})") == "ValueError: invalid pin", bad


@pytest.mark.slow
@pytest.mark.skipif("esp32s3" not in PROFILES, reason="no esp32s3 profile")
def test_esp32s3_numbers(sim, transport):
    board = sim("esp32s3", capture=False, events=False)
    t = raw(transport, board.path)
    assert run(t, "print([Pin(n).id() for n in (0, 21, 26, 33, 48)])") == "[0, 21, 26, 33, 48]"
    for bad in ("22", "27", "32", "49", "'GPIO1'"):
        assert error_of(t, f"Pin({bad})") == "ValueError: invalid pin", bad


@pytest.mark.slow
def test_ae3_names(sim, transport):
    board = sim("no-i2s", capture=False, events=False)
    t = raw(transport, board.path)
    assert run(t, "print(Pin('P0').name(), Pin('UART4_TX').name(), Pin('P5_1').name(), Pin.cpu.P5_1 is Pin.board.P0)") \
        == "P5_1 P5_1 P5_1 True"
    refused(t, {
        "Pin('P12')": 'ValueError: unknown named pin "P12"',
        "Pin(0)": "ValueError: invalid pin",
    })
