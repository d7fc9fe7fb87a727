"""`--json` after a stream that ran and then failed: the summary of what was done is still
printed on stdout, with the error and the exit code (docs/reliability.md)."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
from conftest import i2s

pytestmark = pytest.mark.slow  # every test here takes 1 s or more on a loaded 2-core machine


def _port(fault: str, tmp_path) -> str:
    return f"sim://fast?rx_source=ramp&tx_capture={tmp_path / 'tx.wav'}&fault={fault}"


CMDS = {
    "play": lambda port, out: ["play", "--tone", "440", "-d", "8s", "-r", "16000", "-p", port],
    "record": lambda port, out: ["record", "-r", "16000", "-b", "16", "-c", "2", "-d", "8s", "-p", port, out],
    "duplex": lambda port, out: ["duplex", "-o", out, "-d", "8s", "-r", "16000", "-c", "2", "-p", port],
}


@pytest.mark.parametrize("fault,words", [("unplug:at=3s", "lost the board"), ("reboot:at=3s", "the board at")],
                         ids=["unplug", "reboot"])
@pytest.mark.parametrize("cmd", list(CMDS))
def test_a_board_killed_mid_stream_still_gets_its_json_summary(tmp_path, cmd, fault, words):
    out = tmp_path / "rec.wav"
    r = i2s(*CMDS[cmd](_port(fault, tmp_path), out), "-q", "--json", "--timeout", "1s", timeout=60)
    assert r.returncode == 5, r.stderr
    (line,) = r.stdout.splitlines()  # one JSON document, nothing else on stdout
    s = json.loads(line)
    assert s["exit"] == 5 and words in s["error"]
    assert s["error"] in r.stderr  # the same words as the error line
    assert s["action"] == {"play": "played", "record": "recorded", "duplex": "duplex"}[cmd]
    assert s["board"] is None  # the board never sent its report
    assert s["settings"]["rate"] == 16000
    if cmd == "play":
        played = sf.info(str(tmp_path / "tx.wav")).frames if (tmp_path / "tx.wav").exists() else 0
        assert 0 < s["frames"] < 8 * 16000  # sent before the board went; it played no more than that
        assert played <= s["frames"] + 16000  # (the capture also holds the lead-in silence)
    else:
        assert 0 < s["frames"] < 8 * 16000
        assert s["frames"] == sf.info(str(out)).frames  # exactly what the file holds
        assert s["file"] == str(out)
        assert f"kept {s['frames']} frames" in r.stderr


def test_a_full_disk_while_recording_still_gets_its_json_summary(small_disk):
    out = small_disk / "rec.wav"
    r = i2s("record", "-q", "--json", "-r", "48000", "-b", "16", "-c", "2", "-d", "5s",
            "-p", "sim://fast?rx_source=ramp", out, timeout=60)
    assert r.returncode == 1, r.stderr
    s = json.loads(r.stdout)
    assert s["exit"] == 1 and "no space left on the device" in s["error"]
    assert s["frames"] == sf.info(str(out)).frames == (64 * 1024 - 44) // 4
