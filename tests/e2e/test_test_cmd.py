"""`i2s test` end to end: the agent's two-bus "loop" stream on the virtual board's loopback
(sim://fast?loopback=...), measured and judged. The sim's delay is the truth for the latency."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from conftest import ENV, i2s

from i2scli.loopback import looptest


def url(spec, profile="fast"):
    return f"sim://{profile}?loopback={spec.replace('>', '%3E')}"


def run_json(spec, *args, check=0, profile="fast"):
    r = i2s("test", "-p", url(spec, profile), "--json", *args, check=check)
    return json.loads(r.stdout.splitlines()[0]), r


def xruns_passed(res):
    return next(c for c in res["checks"] if c["name"] == "board.xruns")["passed"]


def run_steady(spec, *args, check=0, steady=xruns_passed):
    """run_json, run again (up to three times) while the run is not `steady`: a loaded machine
    makes the virtual board's TX underrun (counted, and its silence found as glitches)."""
    for _ in range(3):
        res, r = run_json(spec, *args, check=None)
        if steady(res):
            break
    assert r.returncode == check, (r.returncode, r.stderr)
    return res, r


@pytest.mark.slow
@pytest.mark.parametrize("delay,frames", [("1ms", 48), ("37smp", 37)])
def test_clean_loopback_passes_and_latency_is_the_delay_exactly(delay, frames):
    res, r = run_json(f"0>1,delay={delay}")
    assert res["passed"] and "PASS: all" in r.stderr
    for c in res["measures"]["channels"]:
        assert c["error"] is None
        assert c["latency_samples"] == frames  # the board's own buffering taken out
        assert c["freq_hz"] == pytest.approx(997, abs=0.01)
    assert res["board_summary"]["sync"]["clock"] == "port"
    assert all(ln.startswith(("PASS", "testing", "format: ")) for ln in r.stderr.splitlines())


# -- the latency on a real board: no port clock ----------------------------------------------

def _no_clock(profile, spec, rate, delay_ms, tries=6):
    """i2s test with the simulator's clock report hidden from the agent (as on a real board).
    A loaded machine can stretch an init call and with it the stated uncertainty: run again.
    (rp2 at 48 kHz 16-bit mono, 8 runs each on a quiet 2-core machine, 3 Dec 2026: the sim's TX
    init took 500-720 us in 2-3 of them, which adds a whole 64-frame DMA half, 1.33 ms, to the
    stated uncertainty, before and after protocol 2; three tries failed a full suite once.)"""
    res, errors = None, []
    for _ in range(tries):
        port = f"sim://{profile}?loopback={spec.replace('>', '%3E')},delay={delay_ms}ms&sim_stats=no"
        r = i2s("test", "-p", port, "-r", str(rate), "-b", "16", "-c", "1", "-d", "1s", "--json", check=None)
        if not r.stdout.strip():  # no result at all (a starved virtual link): said, and tried again
            errors.append((r.returncode, r.stderr.strip().splitlines()[-1:]))
            continue
        res = json.loads(r.stdout.splitlines()[0])
        if res["latency_uncertainty_ms"] is not None and res["latency_uncertainty_ms"] <= max(1.0, 4000 / rate):
            break
    assert res is not None, errors
    return res


@pytest.mark.slow
@pytest.mark.parametrize("profile,spec,rate", [("rp2", "0>1", 4000), ("rp2", "0>1", 16000), ("rp2", "0>1", 48000),
                                               ("pybd", "1>2", 16000), ("mimxrt", "2>1", 48000)])
@pytest.mark.parametrize("delay_ms", [4, 16])
def test_latency_without_the_port_clock_is_the_delay_within_its_uncertainty(profile, spec, rate, delay_ms):
    _holds_the_delay(_no_clock(profile, spec, rate, delay_ms), rate, delay_ms)


@pytest.mark.slow
@pytest.mark.parametrize("profile,rate", [("esp32", 8000), ("esp32s3", 48000)])
def test_esp32_latency_without_the_port_clock_follows_its_dma_buffers(profile, rate):
    """ESP-IDF's DMA buffers: the first audio at max(256·N, the next buffer boundary after the
    write), N buffers of the loop's 16 kB ring (32 at 16-bit mono: 8192 frames, 1 s at 8 kHz)."""
    res = _no_clock(profile, "0>1", rate, 16)
    _holds_the_delay(res, rate, 16)
    sync = res["board_summary"]["sync"]
    assert sync["tx_write_us"] * rate // 1_000_000 % 256 in range(32, 64)  # an eighth into a buffer
    assert res["board_latency_frames"] == 8192 - sync["rx_init_us"] * rate // 1_000_000


def _holds_the_delay(res, rate, delay_ms):
    sync = res["board_summary"]["sync"]
    assert sync["clock"] == "ticks" and "tx_first_frame" not in sync  # the real-board branch
    truth = delay_ms * rate // 1000
    unsure = res["latency_uncertainty_frames"]
    assert unsure is not None and res["latency_uncertainty_ms"] <= max(1.0, 4000 / rate)
    for c in res["measures"]["channels"]:
        assert abs(c["latency_samples"] - truth) <= unsure, (c["latency_samples"], truth, unsure, sync)
        assert c["latency_uncertainty_frames"] == unsure
    # the write's own time, without the DMA halves, would be off by more than that
    naive = round(sync["tx_write_us"] * rate / 1e6) - sync["rx_init_us"] * rate // 1_000_000
    total = res["measures"]["channels"][0]["latency_total_samples"]
    assert abs(total - naive - truth) > unsure


def test_board_frames_from_ticks():
    sync = {"clock": "ticks", "tx_init_us": 100, "rx_open_us": 200, "tx_write_us": 3000, "rx_init_us": 50_000}
    # 4 kHz, 32-frame halves: the write 12 frames in, taken at frame 32, on the wire at 64; RX at 200
    assert looptest.board_frames(sync, 4000, 32) == (64 - 200, 1.8)
    # a write 31 frames in, the clock maybe 1.6 frames older: perhaps in the next half, a half more uncertain
    assert looptest.board_frames({**sync, "tx_write_us": 7900, "tx_init_us": 400}, 4000, 32) == (64 - 200, 34.6)
    # esp32, 8 buffers of 256 frames: a write before the circle's end goes out at 2048
    assert looptest.board_frames(sync, 4000, 256, 2048) == (2048 - 200, 1.8)
    # ...and one later at the next buffer boundary, or the one after if the clock started early
    late = {**sync, "tx_write_us": 600_000, "tx_init_us": 400}  # frame 2400, 96 in
    assert looptest.board_frames(late, 4000, 256, 2048) == (2560 - 200, 2.6)
    assert looptest.board_frames({**late, "tx_write_us": 639_900}, 4000, 256, 2048) == (2560 - 200, 258.6)
    # no DMA known for the port: the write's time, no uncertainty to state
    assert looptest.board_frames(sync, 4000, 0) == (12 - 200, None)
    # the port's own report (the virtual board) is exact
    assert looptest.board_frames({**sync, "tx_first_frame": 70}, 4000, 32) == (70 - 200, 0.0)


# -- a board no preset knows ------------------------------------------------------------------

PINS = ["--tx-id", "0", "--tx-sck", "1", "--tx-ws", "2", "--tx-sd", "3",
        "--rx-id", "1", "--rx-sck", "5", "--rx-ws", "6", "--rx-sd", "7"]


@pytest.mark.slow
def test_a_board_no_preset_knows_runs_with_every_pin_given():
    port = url("0>1,delay=1ms", "custom")
    r = i2s("test", "-p", port, "-d", "0.5s", check=2)
    assert "no two-bus preset fits this board" in r.stderr
    assert "--tx-id, --tx-sck, --tx-ws, --tx-sd, --rx-id, --rx-sck, --rx-ws, --rx-sd" in r.stderr
    r = i2s("test", "-p", port, "-d", "0.5s", *PINS[:-2], check=2)  # all but --rx-sd
    assert r.stderr.strip().endswith("or also --rx-sd")
    res, r = run_json("0>1,delay=1ms", *PINS, "-d", "0.5s", profile="custom")
    assert res["passed"] and "PASS: all" in r.stderr
    assert res["tx"] == {"id": 0, "sck": 1, "ws": 2, "sd": 3, "mck": None}
    assert res["rx"] == {"id": 1, "sck": 5, "ws": 6, "sd": 7, "mck": None}
    assert [c["latency_samples"] for c in res["measures"]["channels"]] == [48, 48]


@pytest.mark.slow
def test_human_output_one_line_per_check_and_a_verdict():
    r = i2s("test", "-p", url("0>1,delay=1ms"), "-c", "1", "-b", "16", "--max-latency", "2ms", check=0)
    lines = r.stdout.splitlines()
    assert lines[-1].startswith("PASS: all")
    assert any("ch0.latency is 0.001 s" in ln for ln in lines)
    assert all(ln.startswith(("PASS ", "FAIL ", "PASS:", "FAIL:")) for ln in lines)


@pytest.mark.slow
def test_noise_fails_min_snr_with_exit_7_and_the_json_names_the_check(tmp_path):
    junit = tmp_path / "report.xml"
    res, r = run_json("0>1,delay=1ms,noise=-40", "--min-snr", "60", "--junit", junit, check=7)
    failed = [c["name"] for c in res["checks"] if not c["passed"]]
    assert "ch0.snr" in failed and "ch1.snr" in failed
    assert not res["passed"] and "FAIL:" in r.stderr
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert len(suites) == 1
    cases = suites[0].findall("testcase")
    assert [c.get("name") for c in cases] == [c["name"] for c in res["checks"]]  # one testcase per check
    assert {c.get("name") for c in cases if c.find("failure") is not None} == set(failed)


@pytest.mark.slow
def test_dropped_frames_are_found_where_they_were_dropped():
    # the stimulus starts about 0.44 s in; frame 40000 is well inside it
    res, _ = run_json("0>1,drop=40000:50", check=7)
    failed = [c["name"] for c in res["checks"] if not c["passed"]]
    assert "ch0.glitches" in failed
    for c in res["measures"]["channels"]:
        assert c["glitch_count"] >= 1
        assert any(abs(g["position"] - 40000) <= 5 for g in c["glitches"]), c["glitches"]
        # the least SNR of a 20 ms window is the one that holds the drop
        a = c["min_window_snr_frame"]
        assert a <= 40000 < a + 960 and c["min_window_snr_glitch"] is True
        assert c["min_window_snr_s"] == pytest.approx(a / 48000, abs=1e-4)
        assert c["min_window_snr_db"] < 30 < c["start"]["min_window_snr_db"]


@pytest.mark.slow
@pytest.mark.parametrize("drop,period,matches", [
    # a block of 32 frames dropped every 100 ms of the RX clock: the recording lacks them, so
    # its glitches are 4800 - 32 frames apart, which no buffer of the session is
    ("32,drop_every=100ms", 4768, []),
    # 8 every 2056 frames: 2048 apart in the recording, the I2S ring (16384 bytes of 8-byte
    # frames) and four DATA payloads (4096 bytes). (The loop runs at the pace RX delivers:
    # losing 1 % or more makes TX underrun within the test, and those glitches are not periodic.)
    ("8,drop_every=2056smp", 2048, [{"buffer": "DATA payload", "frames": 512, "multiple": 4},
                                    {"buffer": "I2S ring (ibuf)", "frames": 2048, "multiple": 1}]),
])
def test_a_block_dropped_periodically_reports_the_period_and_the_buffer(drop, period, matches):
    res, r = run_steady(f"0>1,drop=24000:{drop}", "-r", "48000", "-b", "32", "-c", "2", check=7,
                        steady=lambda res: all(c["glitch_period_count"] == c["glitch_count"]
                                               for c in res["measures"]["channels"]))
    assert res["measures"]["buffers"] == {"DATA payload": 512, "I2S ring (ibuf)": 2048}
    for c in res["measures"]["channels"]:
        pos = [g["position"] for g in c["glitches"]]
        assert pos[0] == pytest.approx(24000, abs=2) and len(pos) == c["glitch_count"] >= 10
        assert c["glitch_period_frames"] == pytest.approx(period, abs=0.5)
        assert c["glitch_period_ms"] == pytest.approx(1000 * period / 48000, abs=0.02)
        assert c["glitch_period_count"] == len(pos)
        assert c["glitch_period_matches"] == matches
    line = next(ln for ln in r.stderr.splitlines() if ln.startswith("FAIL ch0.glitches"))
    assert f"of them every {period} frames ({round(1000 * period / 48000, 3):g} ms) in the recording" in line
    assert ("the I2S ring (ibuf) (2048 frames)" in line) == bool(matches)


@pytest.mark.slow
def test_a_start_up_glitch_is_judged_apart_unless_ignore_start_is_0():
    # 20 frames dropped 10 ms into the stimulus (it starts at frame 20896 of the signal, a few
    # frames either way in the recording): the first 30 ms are the start check's
    spec = "0>1,drop=21376:20"
    res, r = run_steady(spec, "-c", "1", "--min-window-snr", "60")
    (c,) = res["measures"]["channels"]
    assert c["glitch_count"] == 0 and c["min_window_snr_db"] > 60
    (g,) = c["start"]["glitches"]
    assert g["position"] == pytest.approx(21376, abs=2) and c["start"]["min_window_snr_db"] < 40
    start = next(x for x in res["checks"] if x["name"] == "ch0.start")
    assert start["passed"] and start["value"] == 1 and "not judged" in start["message"]
    res, r = run_steady(spec, "-c", "1", "--max-start-glitches", "0", check=7)
    assert [x["name"] for x in res["checks"] if not x["passed"]] == ["ch0.start"]
    res, r = run_steady(spec, "-c", "1", "--ignore-start", "0", "--min-window-snr", "60", check=7)
    (c,) = res["measures"]["channels"]
    assert [g["position"] for g in c["glitches"]] == [pytest.approx(21376, abs=2)] and "start" not in c
    assert [x["name"] for x in res["checks"] if not x["passed"]] == ["ch0.glitches", "ch0.window_snr"]
    assert res["measures"]["ignore_start_ms"] == 0


@pytest.mark.slow
def test_a_loopback_that_carries_nothing_fails_with_the_reason():
    # no loopback wired: RX reads silence
    r = i2s("test", "-p", "sim://fast", check=7)
    assert "the loopback carries nothing" in r.stdout


@pytest.mark.slow
def test_rp2_two_pio_buses():
    res, _ = run_json("0>1,delay=10smp", "-r", "16000", "-b", "16", "-c", "1", "-d", "0.6s", profile="rp2")
    assert res["passed"]
    assert res["tx"]["id"] == 0 and res["rx"]["id"] == 1
    assert res["measures"]["channels"][0]["latency_samples"] == 10


@pytest.mark.slow
def test_one_bus_board_is_refused_with_exit_4():
    r = i2s("test", "-p", "sim://openmv", check=4)
    assert "has one I2S bus" in r.stderr and "needs a board with two" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args,words", [
    (["--freq-tolerance", "-0.1"], "must not be negative"),
    (["--freq", "30000"], "Nyquist"),
    (["--min-snr", "-3"], "min_snr must not be negative"),
    (["--max-thd-n", "20"], "max_thd_n"),
    (["--max-glitches", "-1"], "must not be negative"),
])
def test_bad_thresholds_are_usage_errors(args, words):
    r = i2s("test", "-p", "sim://fast", *args, check=2)
    assert words in r.stderr


@pytest.mark.slow
def test_limits_file(tmp_path):
    bad = tmp_path / "l.toml"
    bad.write_text("min_snr = 60\nwobble = 1\n")
    r = i2s("test", "-p", "sim://fast", "--limits", bad, check=2)
    assert "unknown limit 'wobble'" in r.stderr
    good = tmp_path / "g.toml"
    good.write_text("[limits]\nmin_snr = 60\n")
    res, _ = run_steady("0>1,delay=1ms,noise=-40", "--limits", good, check=7)
    assert {c["name"] for c in res["checks"] if not c["passed"]} == {"ch0.snr", "ch1.snr"}


@pytest.mark.slow
def test_limits_file_with_the_window_snr_and_the_start(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text("[limits]\nmin_window_snr = 200\nignore_start = 0.05\nmax_start_glitches = 0\n")
    res, r = run_steady("0>1,delay=1ms", "-c", "1", "-b", "16", "--limits", path, check=7)
    assert res["limits"]["min_window_snr"] == 200 and res["limits"]["ignore_start"] == 0.05
    assert res["measures"]["ignore_start_ms"] == 50
    checks = {x["name"]: x for x in res["checks"]}
    # a clean 16-bit path: a -6 dBFS sine over 16-bit rounding, about 92 dB in every window
    assert not checks["ch0.window_snr"]["passed"] and 90 < checks["ch0.window_snr"]["value"] < 93
    assert checks["ch0.start"]["passed"] and checks["ch0.start"]["limit"] == 0
    res, r = run_steady("0>1,delay=1ms", "-c", "1", "-b", "16", "--limits", path, "--min-window-snr", "85")
    assert res["passed"] and res["limits"]["min_window_snr"] == 85  # the option overrides the file


@pytest.mark.slow
@pytest.mark.parametrize("text,words", [
    ("min_window_snr = -3\n", "min_window_snr must not be negative (-3 dB)"),
    ("max_start_glitches = 1.5\n", "max_start_glitches must be a whole number >= 0, not 1.5"),
    ("ignore_start = \"30ms\"\n", "ignore_start must be a number, not '30ms'"),
    ("ignore_start = 20\n", "ignore_start is in seconds between 0 and 10, not 20"),
])
def test_bad_new_limits_in_a_file_are_one_line_exit_2(tmp_path, text, words):
    path = tmp_path / "rig.toml"
    path.write_text(text)
    r = i2s("test", "-p", _no_board(tmp_path), "--limits", path, check=2)
    _path_error(r, path, words)


@pytest.mark.slow
def test_ignore_start_longer_than_the_stimulus_is_a_usage_error():
    r = i2s("test", "-p", "sim://fast", "-d", "0.3s", "--ignore-start", "210ms", check=2)
    assert "--ignore-start" in r.stderr and "leaves less than a 20 ms window of the 0.3 s stimulus" in r.stderr


@pytest.mark.slow
def test_two_boards_at_once_a_verdict_each_exit_7_and_a_testsuite_each(tmp_path):
    clean, noisy = url("0>1,delay=1ms"), url("0>1,delay=1ms,noise=-40")
    junit = tmp_path / "report.xml"
    r = i2s("test", "-p", clean, "-p", noisy, "--min-snr", "60", "--json", "--junit", junit,
            "--plot", tmp_path / "p.png", check=7, timeout=120)
    res = json.loads(r.stdout.splitlines()[0])
    assert list(res) == [clean, noisy]  # {port: result}, in the order given
    assert res[clean]["passed"] and res[clean]["exit"] == 0
    assert res[clean]["measures"]["channels"][0]["latency_samples"] == 48
    assert not res[noisy]["passed"] and res[noisy]["exit"] == 7
    failed = {c["name"] for c in res[noisy]["checks"] if not c["passed"]}
    assert {"ch0.snr", "ch1.snr"} <= failed
    assert f"FAIL: 1 of 2 boards failed ({noisy})" in r.stderr  # with --json the blocks go to stderr
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == [clean, noisy]
    assert suites[0].get("failures") == "0" and int(suites[1].get("failures")) >= 2
    assert sorted(f.name for f in tmp_path.glob("p*.png")) == ["p-1.png", "p-2.png"]  # a plot per board


@pytest.mark.slow
def test_many_boards_human_blocks_and_a_board_that_fails_to_start():
    ok = url("0>1,delay=1ms")
    r = i2s("test", "-p", ok, "-p", "sim://openmv", "-c", "1", "-b", "16", "-d", "0.5s", check=4, timeout=120)
    out = r.stdout
    assert out.index(f"== {ok}") < out.index("PASS: all") < out.index("== sim://openmv")
    assert "ERROR (exit 4): " in out and "has one I2S bus" in out
    assert out.splitlines()[-1] == "FAIL: 1 of 2 boards failed (sim://openmv)"
    assert "[sim://openmv] i2s: error:" in r.stderr  # the board's own error, said which board


@pytest.mark.slow
@pytest.mark.parametrize("spec,suffix", [("0>1,delay=1ms,drop=40000:50", ".png"), ("0>1,gain=-3", ".svg")])
def test_plot_png_and_svg(tmp_path, spec, suffix):
    pytest.importorskip("matplotlib")
    out = tmp_path / f"plot{suffix}"
    args = ["--signal", "sweep"] if suffix == ".svg" else []
    i2s("test", "-p", url(spec), "-q", *args, "--plot", out, check=7 if "drop" in spec else 0)
    data = out.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10000
    else:
        assert ET.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"


def _without_matplotlib(*args):
    """`i2s` in a Python where `import matplotlib` fails, as when the extra is not installed."""
    code = ("import sys, runpy; sys.modules['matplotlib'] = None; sys.argv = ['i2s'] + sys.argv[1:]; "
            "runpy.run_module('i2scli', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=60,
                       env=ENV)
    assert "Traceback" not in r.stderr, r.stderr
    return r


@pytest.mark.slow
def test_plot_without_matplotlib_is_a_hint_after_the_verdict(tmp_path):
    out = tmp_path / "p.png"
    r = _without_matplotlib("test", "-p", url("0>1,delay=1ms"), "-c", "1", "-d", "0.5s", "--plot", out)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout.splitlines()[-1].startswith("PASS: all")  # the verdict is printed
    assert r.stderr.splitlines()[-1] == "i2s: error: --plot needs matplotlib: pip install 'i2scli[plot]'"
    assert not out.exists()
    # a failed check keeps its exit code 7; the hint is still said
    r = _without_matplotlib("test", "-p", url("0>1,noise=-40"), "-c", "1", "-d", "0.5s", "--min-snr", "60",
                            "--plot", out)
    assert r.returncode == 7 and r.stdout.splitlines()[-1].startswith("FAIL:")
    assert "--plot needs matplotlib" in r.stderr


@pytest.mark.slow
def test_plot_needs_png_or_svg():
    r = i2s("test", "-p", "sim://fast", "--plot", "x.pdf", check=2)
    assert "neither .png nor .svg" in r.stderr


# -- bad paths: said before the board is touched -----------------------------------------------
# The port does not exist: had the board been touched, the run would end with exit 3 ("no such
# port"). Each case must instead be one line naming the path, with its own exit code.


def _path_error(r, path, words):
    """One line on stderr, `i2s: error: PATH: ...words`, and nothing on stdout."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [lines[0]] and lines[0].startswith(f"i2s: error: {path}: "), r.stderr
    assert words in lines[0], lines
    assert r.stdout == ""


def _no_board(tmp_path):
    return str(tmp_path / "ttyNOPE")


@pytest.mark.slow
@pytest.mark.parametrize("case,words", [
    ("missing", "no such file"),
    ("directory", "is a directory, not a limits file"),
    ("not-utf8", "not valid TOML: not UTF-8 text"),
    ("not-a-table", "limits must be a table"),
    ("not-toml", "not valid TOML"),
])
def test_bad_limits_file_is_a_usage_error_before_the_board(tmp_path, case, words):
    path = tmp_path / "limits.toml"
    if case == "directory":
        path.mkdir()
    elif case == "not-utf8":
        path.write_bytes(b"min_snr = 60 # \xff\xfe\n")
    elif case == "not-a-table":
        path.write_text("limits = 5\n")
    elif case == "not-toml":
        path.write_text("min_snr = \n")
    r = i2s("test", "-p", _no_board(tmp_path), "--limits", path, check=2)
    _path_error(r, path, words)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_limits_file(tmp_path):
    path = tmp_path / "limits.toml"
    path.write_text("min_snr = 60\n")
    path.chmod(0)
    _path_error(i2s("test", "-p", _no_board(tmp_path), "--limits", path, check=2), path, "permission denied")


@pytest.mark.slow
@pytest.mark.parametrize("option,name", [("--junit", "r.xml"), ("--save-recording", "r.wav"), ("--plot", "p.png")])
@pytest.mark.parametrize("where,words", [
    ("missing-dir", "does not exist"),
    ("under-a-file", "is not a directory"),
    ("a-directory", "is a directory"),
])
def test_output_that_cannot_be_written_is_exit_1_before_the_board(tmp_path, option, name, where, words):
    if where == "missing-dir":
        path = tmp_path / "missing" / name
    elif where == "under-a-file":
        (tmp_path / "file").write_text("")
        path = tmp_path / "file" / name
    else:
        path = tmp_path / name
        path.mkdir()
    r = i2s("test", "-p", _no_board(tmp_path), option, path, check=1)
    _path_error(r, path, words)
    assert not (tmp_path / "missing").exists()


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in any directory")
def test_output_in_a_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    _path_error(i2s("test", "-p", _no_board(tmp_path), "--junit", ro / "r.xml", check=1), ro / "r.xml",
                "cannot write in directory")


@pytest.mark.slow
def test_many_boards_bad_outputs_are_said_before_any_board_is_tested(tmp_path):
    """With -p repeated, the parent checks its JUnit file and each board's --plot file before it
    starts a process per board: no `[PORT] i2s: error: no such port` lines."""
    ports = ["-p", _no_board(tmp_path), "-p", str(tmp_path / "ttyNOPE2")]
    _path_error(i2s("test", *ports, "--junit", tmp_path / "missing" / "r.xml", check=1),
                tmp_path / "missing" / "r.xml", "does not exist")
    _path_error(i2s("test", *ports, "--plot", tmp_path / "missing" / "p.png", check=1),
                tmp_path / "missing" / "p-1.png", "does not exist")  # board 1's file, as it would be written
    _path_error(i2s("test", *ports, "--limits", tmp_path / "nope.toml", check=2), tmp_path / "nope.toml",
                "no such file")


# -- link.errors counts the host's resyncs and sequence gaps too --------------------------------


RECORD_BOARD_OUTPUT = """
import sys, serial
seen = bytearray()
read = serial.Serial.read
def counted(self, size=1):
    data = read(self, size)
    seen.extend(data)
    return data
serial.Serial.read = counted
import atexit
path = sys.argv.pop(1)
atexit.register(lambda: open(path, "wb").write(seen))
from i2scli.start import run
run()
"""


def deep_data_header(tmp_path, args: list[str], n: int = 74) -> int:
    """Where the `n`th DATA frame from the board starts, in bytes since the board started: the
    same command, run once without a fault, with every byte the host reads kept (it reads them
    all: nothing is flushed unread). The raw REPL's answers before HELLO depend on how the agent
    was uploaded (its size, its pieces), so no fixed offset stays right."""
    out = tmp_path / "board-output.bin"
    r = subprocess.run([sys.executable, "-c", RECORD_BOARD_OUTPUT, str(out), *args], capture_output=True, text=True,
                       timeout=120, env=ENV)
    assert r.returncode in (0, 7), r.stderr[-2000:]  # 7: a loaded machine failed board.xruns
    data = out.read_bytes()
    starts = [i for i in range(len(data) - 7) if data[i:i + 3] == b"\xa5\x5a\x84" and data[i + 4:i + 6] == b"\x00\x10"
              and (~sum(data[i + 2:i + 6])) & 0xFF == data[i + 6]]
    assert len(starts) > n, len(starts)
    return starts[n]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["corrupt", "drop"])
def test_a_frame_lost_to_a_damaged_header_fails_link_errors(tmp_path, kind):
    """A byte damaged in the header of a DATA frame from the board: the host's decoder never
    sees a frame there, so there is no CRC error anywhere, only a host-side resync and a
    sequence gap (the board's own counters, of what the host sent, stay 0). That frame's audio
    is lost, so link.errors fails, exit 7.

    Where the byte lands: with --no-probe the board's output is the same byte for byte on every
    run: the raw REPL's answers to the upload, HELLO, READY, CREDIT and the loop's frames (CREDIT
    15 bytes, DATA 4107 bytes). A run without the fault finds where a DATA frame deep in the
    stream starts (`deep_data_header`); the fault hits its seq byte, and 3 bytes either way
    would still land in its 7-byte header. --max-glitches 1 lets the one glitch the lost frame
    leaves pass: link.errors alone fails."""
    args = ["test", "--no-probe", "--max-glitches", "1", "--json"]
    seq = deep_data_header(tmp_path, [*args, "-p", url("0>1")]) + 3
    r = i2s(*args, "-p", url("0>1") + f"&fault={kind}:offset={seq},dir=out", check=7)
    res = json.loads(r.stdout.splitlines()[0])
    s = res["board_summary"]
    assert {k: s[k] for k in ("crc_errors", "resyncs", "seq_gaps")} == {"crc_errors": 0, "resyncs": 0, "seq_gaps": 0}
    assert (s["host_crc_errors"], s["host_resyncs"], s["host_seq_gaps"]) == (0, 1, 1)
    link = next(c for c in res["checks"] if c["name"] == "link.errors")
    assert (link["value"], link["passed"]) == (2, False)
    assert link["message"] == "link.errors: 0 CRC errors, 1 resyncs, 1 sequence gaps on the link"
    failed = [c["name"] for c in res["checks"] if not c["passed"]]
    assert r.stderr.splitlines()[-1] == f"FAIL: {len(failed)} of 12 checks failed ({', '.join(failed)})"
    if "board.xruns" not in failed:  # (the sim runs in real time: a loaded machine can starve it)
        assert failed == ["link.errors"]  # nothing else would have failed the test
    else:
        assert "link.errors" in failed
    assert res["recorded_frames"] == s["rx_frames"] - 4096 // 8  # one DATA frame (32-bit stereo) lost
