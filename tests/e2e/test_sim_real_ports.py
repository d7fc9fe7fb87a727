"""The virtual board against the real ports' own sources and tests.

- MicroPython's own `tests/extmod/machine_i2s_rate.py` (of the version the virtual board claims),
  read at test time from a local MicroPython git repository and run through `mpremote run` on
  every profile whose `sys.platform` it names; its output must be its `.exp`. Nothing of it is
  kept here: without the repository the test is skipped and says why.
- The same property, written here from scratch: blocking write/readinto take the time the
  board's I2S clock takes to move that audio, on every profile with a `machine.I2S`.
- The I2S pad tables (i2scli/sim/i2s_pins.py) are the ports' tables, compared entry by entry with
  the repository's `mpconfigboard.h`/`af.csv` when it is there, and looked up with the ports'
  rules, errors in the ports' words, from board code.
- The board facts the virtual board and the host's targets both hold agree where they must.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from conftest import ROOT, mpremote
from test_sim_pins import ARGS, I2S_TOO, raw
from test_sim_pins import error_of as pin_error_of
from test_sim_pins import refused as pin_refused

from i2scli.sim import i2s_pins, pins
from i2scli.sim.profiles import BRIDGES, PROFILES

# A MicroPython git repository (a bare one will do) and the version the virtual board claims.
MP_REPO = os.environ.get("I2S_MICROPYTHON_REPO", "/work/.mirror/micropython+micropython/repo")
MP_VERSION = "v" + PROFILES["rp2"].release


def upstream(path: str) -> str:
    """A file of MicroPython at MP_VERSION from MP_REPO, or a skip that says what is missing."""
    if not os.path.isdir(MP_REPO):
        pytest.skip(f"no MicroPython repository at {MP_REPO} (set I2S_MICROPYTHON_REPO to a clone)")
    r = subprocess.run(["git", "-C", MP_REPO, "show", f"{MP_VERSION}:{path}"], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"{MP_REPO} has no {MP_VERSION}:{path}: {r.stderr.strip()}")
    return r.stdout


# -- MicroPython's own rate test ----------------------------------------------------------------
# every profile whose sys.platform the test has pins for ("pyboard", "rp2", "mimxrt", "esp32")
RATE_TEST_PROFILES = ["stm32", "pybd", "rp2", "mimxrt", "esp32", "esp32s3"]


@pytest.mark.slow
@pytest.mark.parametrize("profile", RATE_TEST_PROFILES)
def test_micropython_i2s_rate_test(sim, tmp_path, profile):
    script = upstream("tests/extmod/machine_i2s_rate.py")
    want = upstream("tests/extmod/machine_i2s_rate.py.exp")
    path = tmp_path / "machine_i2s_rate.py"
    path.write_text(script)
    board = sim(profile, capture=False, events=False)
    r = mpremote("connect", board.path, "run", str(path), timeout=120)
    got = r.stdout.decode().replace("\r\n", "\n")
    assert got == want, got


# -- the same property, our own test ------------------------------------------------------------
# Board code: for each mode, slot width and format, a preloading call, then three blocking calls
# of BLOCK frames each, timed with ticks_us; prints mode, bits, channels, µs.
RATE_SCRIPT = """
from machine import I2S, Pin
import time
RATE = {rate}
BLOCK = RATE // 10
def one(mode, bits, fmt, sck, ws, sd):
    i = I2S({id}, sck=sck, ws=ws, sd=sd, mode=mode, bits=bits, format=fmt, rate=RATE, ibuf=1000)
    ch = 1 if fmt == I2S.MONO else 2
    buf = bytearray(BLOCK * bits // 8 * ch)
    f = i.write if mode == I2S.TX else i.readinto
    f(buf)
    t0 = time.ticks_us()
    for _ in range(3):
        f(buf)
    dt = time.ticks_diff(time.ticks_us(), t0)
    i.deinit()
    print("TX" if mode == I2S.TX else "RX", bits, ch, dt)
for mode, sd in ((I2S.TX, {tx_sd}), (I2S.RX, {rx_sd})):
    for bits in (16, 32):
        for fmt in (I2S.MONO, I2S.STEREO):
            one(mode, bits, fmt, {sck}, {ws}, sd)
"""

# (I2S id, sck, ws, TX sd, RX sd) of each profile: pads its real port takes
OWN_PINS = {
    "openmv": (2, "Pin('P2')", "Pin('P3')", "Pin('P0')", "Pin('P1')"),
    "stm32": (2, "Pin('Y6')", "Pin('Y5')", "Pin('Y8')", "Pin('Y8')"),
    "pybd": (1, "Pin('X6')", "Pin('X5')", "Pin('X8')", "Pin('X8')"),
    "rp2": (1, "Pin(10)", "Pin(11)", "Pin(12)", "Pin(12)"),
    "esp32": (1, "Pin(26)", "Pin(27)", "Pin(25)", "Pin(35)"),
    "esp32s3": (0, "Pin(40)", "Pin(41)", "Pin(42)", "Pin(42)"),
    "mimxrt": (1, "Pin('D26')", "Pin('D27')", "Pin('D7')", "Pin('D8')"),
    "fast": (0, "Pin(16)", "Pin(17)", "Pin(18)", "Pin(18)"),
}


@pytest.mark.slow
@pytest.mark.parametrize("profile", sorted(OWN_PINS))
def test_blocking_calls_take_the_audio_s_own_time(transport, profile):
    """Three blocking writes (reads) of 100 ms of audio each, after one that filled (emptied)
    the ring (the blocks are larger than the 1000-byte ring), take 300 ms of the board's clock:
    a TX call returns when its last byte is in the ring, an RX call when its last frame has
    arrived, so each follows the I2S clock. The DMA moves the ring a half (128 bytes of stereo
    frames) at a time: at 8 kHz one half of 16-bit frames is 4 ms. esp32 has no ring: a call
    goes on when a DMA buffer of 256 frames ends (32 ms)."""
    i2s_id, sck, ws, tx_sd, rx_sd = OWN_PINS[profile]
    t = raw(transport, f"sim://{profile}")
    rate = 8000
    out = t.exec(RATE_SCRIPT.format(rate=rate, id=i2s_id, sck=sck, ws=ws, tx_sd=tx_sd, rx_sd=rx_sd),
                 ).decode().split()
    rows = [out[i:i + 4] for i in range(0, len(out), 4)]
    assert [r[:3] for r in rows] == [[m, b, c] for m in ("TX", "RX") for b in ("16", "32") for c in ("1", "2")]
    for mode, bits, ch, us in rows:
        half_us = 128 // (int(bits) // 8 * 2) * 1_000_000 // rate  # one DMA half of stereo frames
        if profile.startswith("esp32"):
            half_us = 256 * 1_000_000 // rate
        assert abs(int(us) - 300_000) <= half_us + 1000, (profile, mode, bits, ch, us)


# -- the pad tables are the ports' --------------------------------------------------------------
def test_teensy_i2s_table_is_the_boards():
    """i2s_pins.TEENSY41 is TEENSY41/mpconfigboard.h's I2S_GPIO_MAP, row by row, in its order."""
    text = upstream("ports/mimxrt/boards/TEENSY41/mpconfigboard.h")
    rows = re.findall(r"I2S_GPIO\((\d), (\w+), (\w+), (\w+),", text)
    assert len(rows) == 15
    want = tuple((int(i), fn.lower(), mode.lower(), pins.TEENSY41.id_of(pad)) for i, fn, mode, pad in rows)
    assert i2s_pins.TEENSY41 == want
    assert PROFILES["mimxrt"].i2s.pin_map == want
    assert re.search(r"#define MICROPY_HW_I2S_NUM \(2\)", text)
    assert PROFILES["mimxrt"].i2s.ids == (1, 2)


@pytest.mark.parametrize("profile,board,af_file,units", [
    ("stm32", "PYBV11", "stm32f405_af.csv", (2,)),
    ("pybd", "PYBD_SF2", "stm32f722_af.csv", (1, 2)),
])
def test_stm32_i2s_table_is_the_chips_af_table(profile, board, af_file, units):
    """The profile's pad table is every I2S alternate function of the buses the board builds
    (MICROPY_HW_I2Sn) that the chip's af.csv gives a pad of the board's pins.csv, in the order
    make-pins.py lists them (I2S2ext_SD: type EXTSD)."""
    af = upstream(f"ports/stm32/boards/{af_file}")
    conf = upstream(f"ports/stm32/boards/{board}/mpconfigboard.h")
    built = tuple(u for u in (1, 2, 3) if re.search(rf"#define MICROPY_HW_I2S{u}\b", conf))
    prof = PROFILES[profile]
    assert built == units == prof.i2s.ids
    on_board = {cpu.lstrip("-") for cpu in (row.split(",")[1] for row in upstream(
        f"ports/stm32/boards/{board}/pins.csv").split())}
    want = []
    for line in af.splitlines()[2:]:
        cells = [c.strip() for c in line.split(",")]
        if cells[1] not in on_board:
            continue
        for cell in cells[2:18]:
            for name in cell.split("/"):
                m = re.fullmatch(r"I2S(\d)(ext)?_(\w+)", name)
                if m and int(m[1]) in built:
                    fn = {"CK": "sck", "WS": "ws", "SD": "sd", "MCK": "mck"}[m[3]]
                    want.append((int(m[1]), "ext" + fn if m[2] else fn, None, prof.pins.id_of(cells[1][1:])))
    assert prof.i2s.pin_map == tuple(want)


def test_mimxrt_rates_are_the_ports():
    """The mimxrt profile's rate list is machine_i2s.c's clock_config_map."""
    src = upstream("ports/mimxrt/machine_i2s.c")
    table = src[src.index("clock_config_map[]"):]
    table = table[:table.index("};")]
    rates = []
    for name in re.findall(r"\{kSAI_SampleRate(\w+?),", table):  # 8KHz, 11025Hz, ...
        rates.append(int(name[:-3]) * 1000 if name.endswith("KHz") else int(name[:-2]))
    assert len(rates) == 9 and list(PROFILES["mimxrt"].i2s.rates) == rates


def error_of(t, code):
    return pin_error_of(t, code, I2S_TOO)


def refused(t, cases: dict[str, str]) -> None:
    """Each I2S(...) call raises ValueError with the port's words."""
    pin_refused(t, {code: f"ValueError: {said}" for code, said in cases.items()}, I2S_TOO)


def ok(t, code):
    t.exec("from machine import Pin, I2S\n" + code + ".deinit()\n")




@pytest.mark.slow
def test_teensy_pads_by_the_ports_rules(transport):
    """lookup_gpio() matches pad, function and bus, not the mode: I2S(1) takes SCK D26 (a TX
    row) and D21 (an RX row) in either mode; only SD must be a row of the mode asked for."""
    t = raw(transport, "sim://mimxrt")
    for mode in ("TX", "RX"):
        for sck, ws in (("D26", "D27"), ("D21", "D20"), ("D36", "D37"), ("D21", "D27")):
            sd = "D7" if mode == "TX" else "D8"
            ok(t, f"I2S(1, sck=Pin('{sck}'), ws=Pin('{ws}'), sd=Pin('{sd}'), mode=I2S.{mode}, {ARGS}")
    ok(t, f"I2S(1, sck='D26', ws='D27', sd='D39', mck='D23', mode=I2S.TX, {ARGS}")
    ok(t, f"I2S(1, sck='D26', ws='D27', sd='D38', mode=I2S.RX, {ARGS}")
    cases = {
        f"I2S(1, sck='D26', ws='D27', sd='D8', mode=I2S.TX, {ARGS}": "invalid SD pin",
        f"I2S(1, sck='D26', ws='D27', sd='D7', mode=I2S.RX, {ARGS}": "invalid SD pin",
        f"I2S(2, sck='D4', ws='D3', sd='D2', mode=I2S.RX, {ARGS}": "invalid SD pin",
        f"I2S(2, sck='D26', ws='D3', sd='D2', mode=I2S.TX, {ARGS}": "invalid SCK pin",
        f"I2S(1, sck='D4', ws='D20', sd='D8', mode=I2S.RX, {ARGS}": "invalid SCK pin",
        f"I2S(1, sck='D21', ws='D3', sd='D8', mode=I2S.RX, {ARGS}": "invalid WS pin",
        f"I2S(1, sck='D21', ws='D20', sd='D8', mck='D33', mode=I2S.RX, {ARGS}": "invalid MCK pin",
        # pin by pin, as the port: a bad SCK is reported before a WS that does not exist
        f"I2S(1, sck='D4', ws='nope', sd='D8', mode=I2S.RX, {ARGS}": "invalid SCK pin",
        f"I2S(1, sck='D21', ws='nope', sd='D8', mode=I2S.RX, {ARGS}": "Pin doesn't exist",
    }
    refused(t, cases)


@pytest.mark.slow
def test_pyboard_pads_by_the_ports_rules(transport):
    """pin_find_af(pin, I2S, 2): the pad's first I2S2 function must be the one asked for; the
    pyboard builds no I2S(1)."""
    t = raw(transport, "sim://stm32")
    for sck, ws, sd in (("Y6", "Y5", "Y8"), ("Y9", "Y4", "X22"), ("Y6", "Y4", "Y8")):
        ok(t, f"I2S(2, sck=Pin('{sck}'), ws=Pin('{ws}'), sd=Pin('{sd}'), mode=I2S.TX, {ARGS}")
    cases = {
        f"I2S(2, sck=Pin('Y6'), ws=Pin('Y5'), sd=Pin('Y7'), mode=I2S.RX, {ARGS}": "invalid SD pin",  # I2S2ext_SD
        f"I2S(2, sck=Pin('Y1'), ws=Pin('Y5'), sd=Pin('Y8'), mode=I2S.TX, {ARGS}": "invalid SCK pin",  # I2S2_MCK
        f"I2S(2, sck=Pin('X1'), ws=Pin('Y5'), sd=Pin('Y8'), mode=I2S.TX, {ARGS}": "invalid SCK pin",  # no I2S2
        f"I2S(2, sck=Pin('Y6'), ws=Pin('Y6'), sd=Pin('Y8'), mode=I2S.TX, {ARGS}": "invalid WS pin",
        f"I2S(2, sck=Pin('Y6'), ws='Y5', sd=Pin('Y8'), mode=I2S.TX, {ARGS}": "WS not a Pin type",
        f"I2S(1, sck=Pin('X6'), ws=Pin('X5'), sd=Pin('X8'), mode=I2S.TX, {ARGS}": "invalid id",
    }
    refused(t, cases)


@pytest.mark.slow
def test_pyboard_d_has_both_buses(transport):
    t = raw(transport, "sim://pybd")
    ok(t, f"I2S(1, sck=Pin('X6'), ws=Pin('X5'), sd=Pin('X8'), mode=I2S.TX, {ARGS}")
    ok(t, f"I2S(1, sck=Pin('W29'), ws=Pin('W16'), sd=Pin('Y4'), mode=I2S.RX, {ARGS}")
    ok(t, f"I2S(2, sck=Pin('Y6'), ws=Pin('Y5'), sd=Pin('Y8'), mode=I2S.RX, {ARGS}")
    ok(t, f"I2S(2, sck=Pin.cpu.I1, ws=Pin('Y3'), sd=Pin.cpu.I3, mode=I2S.TX, {ARGS}")
    assert error_of(t, f"I2S(2, sck=Pin('X6'), ws=Pin('Y5'), sd=Pin('Y8'), mode=I2S.TX, {ARGS}") \
        == "ValueError: invalid SCK pin"  # X6 carries I2S1_CK, not I2S2's
    assert error_of(t, f"I2S(1, sck=Pin('X6'), ws=Pin('X5'), sd=Pin('X11'), mode=I2S.TX, {ARGS}") \
        == "ValueError: invalid SD pin"  # X11: I2S1_MCK
    assert error_of(t, f"I2S(3, sck=Pin('X6'), ws=Pin('X5'), sd=Pin('X8'), mode=I2S.TX, {ARGS}") \
        == "ValueError: invalid id"
    assert t.eval("__import__('machine').freq()") == 120_000_000


def test_pico_any_gpio_with_ws_after_sck(transport):
    t = raw(transport, "sim://rp2")
    ok(t, f"I2S(0, sck=Pin(0), ws=Pin(1), sd=Pin(2), mode=I2S.TX, {ARGS}")
    ok(t, f"I2S(1, sck=Pin(27), ws=Pin(28), sd=Pin(29), mode=I2S.RX, {ARGS}")
    assert error_of(t, f"I2S(0, sck=Pin(1), ws=Pin(0), sd=Pin(2), mode=I2S.TX, {ARGS}") \
        == "ValueError: invalid ws (must be sck+1)"
    assert error_of(t, f"I2S(0, sck=29, ws=30, sd=2, mode=I2S.TX, {ARGS}") == "ValueError: invalid pin"
    assert error_of(t, f"I2S(2, sck=0, ws=1, sd=2, mode=I2S.TX, {ARGS}") == "ValueError: invalid id"


def test_esp32_input_only_pads_take_the_bus_but_never_drive(sim, transport):
    """The GPIO matrix takes any GPIO; GPIO34-39 of the ESP32 are inputs only: I2S accepts them
    (ESP-IDF ignores gpio_set_direction's refusal), and they stay inputs. As RX SD they work."""
    board = sim("esp32", capture=False)
    t = raw(transport, board.path)
    ok(t, f"I2S(0, sck=Pin(34), ws=Pin(35), sd=Pin(36), mode=I2S.TX, {ARGS}")
    ok(t, f"I2S(1, sck=Pin(32), ws=Pin(33), sd=Pin(39), mode=I2S.RX, {ARGS}")
    t.close()
    board.stop()
    seen = {}  # every mode each pad was put in (the deinit that follows each bus gives them back as inputs;
    for e in board.events():  # its events may sort before the init's, stamped on another clock)
        if e["ev"] == "pin":
            seen.setdefault(e["name"], set()).add(e["mode"])
    assert [seen[p] for p in (34, 35, 36)] == [{"in"}] * 3, seen  # never driven
    assert all("alt" in seen[p] for p in (32, 33, 39)), seen  # taken by the RX bus


# -- board facts the sim and the host's targets both hold ----------------------------------------
def test_sim_facts_agree_with_the_targets():
    """The virtual board keeps its own model (it imports nothing of i2scli.targets); where the
    two describe one fact they must agree (sources: docs/sim.md)."""
    from i2scli import targets
    from i2scli.targets import esp32 as t_esp32

    pairs = {"esp32": "esp32", "esp32s3": "esp32s3", "mimxrt": "teensy41", "rp2": "pico",
             "stm32": "pyboard", "pybd": "pybd", "openmv": "openmv", "fast": "virtual"}
    for prof_name, target_name in pairs.items():
        prof = PROFILES[prof_name]
        tgt = targets.detect({"platform": prof.platform, "machine": prof.machine})
        assert tgt is not None and tgt.NAME == target_name, prof_name  # the host knows the board
        # the agent's credit window fits the board's input buffer
        assert tgt.STDIN_RING <= prof.link.in_buffer, prof_name
        # every preset bus is one the board has, on pads its port takes for that direction
        tx_buses = [tgt.TX] + ([tgt.LOOP[0]] if tgt.LOOP else [])
        rx_buses = [tgt.RX] + ([tgt.LOOP[1]] if tgt.LOOP else [])
        for mode, buses in (("tx", tx_buses), ("rx", rx_buses)):
            for p in buses:
                assert p.id in prof.i2s.ids, (prof_name, p)
                pads = {fn: prof.pins.pin_id(getattr(p, fn)) for fn in ("sck", "ws", "sd")}
                assert None not in pads.values(), (prof_name, p)
                if prof.i2s.pin_map is not None:
                    for fn, pad in pads.items():
                        assert any(e[0] == p.id and e[1] == fn and e[3] == pad and (fn != "sd" or e[2] in (None, mode))
                                   for e in prof.i2s.pin_map), (prof_name, p, fn)
                if prof.i2s.ws_is_sck_plus_1:
                    assert pads["ws"] == pads["sck"] + 1, (prof_name, p)
                if mode == "tx":
                    assert pads["sck"] not in prof.i2s.input_only and pads["sd"] not in prof.i2s.input_only
        assert prof.pins.pin_id(tgt.DIR_PIN) == prof.dir_pin, prof_name
        if prof.usb_id is not None:  # the host lists the board's own USB device as a board
            ids = targets.usb_ids()
            assert prof.usb_id in ids or (prof.usb_id[0], None) in ids, prof_name
    # bridges: the rate the host moves a bridge to is one the sim's bridge runs exactly, within
    # its datasheet range (CP2102: the host asks 921600, AN205's top rate; the chip's range is 1 M)
    for name in ("cp2102", "ch340", "ft232r"):
        sb = BRIDGES[name]
        tb = t_esp32.BRIDGES[sb.usb_id]
        assert tb.max_baud <= sb.max_baud and sb.line_rate(tb.max_baud) == tb.max_baud, name
    assert BRIDGES["cp2102n"].line_rate(t_esp32.CP2102N.max_baud) == t_esp32.CP2102N.max_baud
    cp = BRIDGES["cp2102"]
    assert cp.line_rate(cp.max_baud) == t_esp32.BRIDGES[cp.usb_id].max_baud == 921600
    assert PROFILES["esp32"].usb_id is None and PROFILES["esp32"].bridge == "cp2102"


def test_sim_does_not_import_the_targets():
    """The virtual board is an independent model: nothing under i2scli/sim reads i2scli.targets."""
    root = ROOT / "i2scli" / "sim"
    hits = [str(p) for p in root.rglob("*.py") if re.search(r"i2scli\.targets|from i2scli import targets",
                                                            p.read_text())]
    assert hits == []
