"""A rig file names a rig's boards with their port and options: `--rig FILE --board-name NAME`
(or I2S_RIG / I2S_BOARD_NAME) gives the command that board's settings; the command line wins."""

from __future__ import annotations

import json

import soundfile as sf
from conftest import ENV, i2s


def _rig(tmp_path, text: str):
    p = tmp_path / "rig.toml"
    p.write_text(text)
    return p


def test_a_board_of_the_rig_brings_its_port_and_options(tmp_path):
    cap = tmp_path / "tx.wav"
    rig = _rig(tmp_path, f'[boards.left-dac]\nport = "sim://rp2?tx_capture={cap}"\nboard = "pico"\nrate = 16000\n'
                         '[boards.other]\nport = "sim://esp32"\n')
    s = json.loads(i2s("play", "--rig", rig, "--board-name", "left-dac", "--tone", "440", "-d", "0.1s", "--json",
                       check=0).stdout)
    assert s["rate"] == 16000 and sf.info(str(cap)).samplerate == 16000


def test_the_command_line_wins_over_the_rig(tmp_path):
    cap = tmp_path / "tx.wav"
    rig = _rig(tmp_path, f'[boards.dac]\nport = "sim://rp2?tx_capture={cap}"\nrate = 16000\n')
    s = json.loads(i2s("play", "--rig", rig, "-r", "8000", "--tone", "440", "-d", "0.1s", "--json", check=0).stdout)
    assert s["rate"] == 8000 and sf.info(str(cap)).samplerate == 8000  # the only board needs no name


def test_i2s_test_takes_the_rigs_limits_file_relative_to_the_rig(tmp_path, monkeypatch):
    (tmp_path / "limits").mkdir()
    (tmp_path / "limits" / "strict.toml").write_text("min_snr = 200\n")
    rig = _rig(tmp_path, '[boards.loop]\nport = "sim://rp2?loopback=0>1"\nlimits = "limits/strict.toml"\n'
                         'duration = "0.3s"\nrate = 16000\n')
    monkeypatch.setitem(ENV, "I2S_RIG", str(rig))
    r = i2s("test", "--board-name", "loop", timeout=120, check=7)
    assert "FAIL  ch0.snr" in r.stdout and "below the minimum 200 dB" in r.stdout


def test_a_wrong_rig_is_a_usage_error_in_one_line(tmp_path):
    rig = _rig(tmp_path, '[boards.a]\nport = "sim://rp2"\n[boards.b]\nport = "sim://esp32"\nfoo = 1\n')
    cases = [
        (["--rig", rig], "has 2 boards (a, b): choose one with --board-name"),
        (["--rig", rig, "--board-name", "c"], "no board named 'c' (it has a, b)"),
        (["--rig", rig, "--board-name", "b"], "boards.b: no command has an option --foo"),
        (["--board-name", "a"], "--board-name needs a rig file: --rig FILE.toml or I2S_RIG"),
        (["--rig", tmp_path / "none.toml", "--board-name", "a"], "none.toml: no such file"),
    ]
    for args, said in cases:
        r = i2s("info", "--no-probe", *args, check=2)
        err = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
        assert len(err) == 1 and err[0].endswith(said), r.stderr


def test_several_boards_of_a_rig_are_tested_at_once_each_with_its_own_settings(tmp_path):
    (tmp_path / "strict.toml").write_text("min_snr = 200\n")
    rig = _rig(tmp_path, '[boards.a]\nport = "sim://rp2?loopback=0>1"\nrate = 16000\nduration = "0.3s"\n'
                         '[boards.b]\nport = "sim://esp32s3?loopback=0>1"\nrate = 8000\nduration = "0.3s"\n'
                         'limits = "strict.toml"\n')
    r = i2s("test", "--rig", rig, "--board-name", "a", "--board-name", "b", "--json", timeout=180, check=7)
    res = json.loads(r.stdout)
    assert list(res) == ["a", "b"] and (res["a"]["rate"], res["b"]["rate"]) == (16000, 8000)
    assert res["a"]["passed"] and res["a"]["exit"] == 0
    failed = [c["name"] for c in res["b"]["checks"] if not c["passed"]]
    assert not res["b"]["passed"] and res["b"]["exit"] == 7
    assert failed == [f"ch{i}.snr" for i in range(res["b"]["channels"])]
    assert res["b"]["board"].startswith("Generic ESP32S3")
