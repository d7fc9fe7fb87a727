"""`i2s test` picks a format the link carries with TX and RX at once (issue 16.1): end to end on
the virtual boards people own, and the refusal of an explicit format that cannot fit."""

import json

import pytest
from conftest import i2s

from i2scli.busformat import BusFormat
from i2scli.loopfit import candidates

LOOPBACK = {"rp2": "0%3E1", "stm32": "1%3E2", "esp32": "0%3E1"}


@pytest.mark.parametrize("profile", ["rp2", "stm32", "esp32"])
def test_default_test_fits_and_passes(profile):
    r = i2s("test", "-p", f"sim://{profile}?loopback={LOOPBACK[profile]}", "--json", "-d", "0.6s", check=0,
            timeout=120)
    res = json.loads(r.stdout.splitlines()[0])
    fmt = res["format"]
    assert fmt["chosen"] is True and res["passed"]
    assert (res["rate"], res["bits"], res["channels"]) == (fmt["rate"], fmt["bits"], fmt["channels"])
    assert 0 < fmt["link_share"] <= 0.5
    said = [ln for ln in r.stderr.splitlines() if ln.startswith("format: ")]
    assert len(said) == 1 and BusFormat(fmt["rate"], fmt["bits"], fmt["channels"]).describe() in said[0]
    checks = {c["name"]: c for c in res["checks"]}
    assert checks["board.xruns"]["value"] == 0


def test_fast_board_keeps_the_best_format():
    r = i2s("test", "-p", "sim://fast?loopback=0%3E1", "--json", "-d", "0.3s", check=0)
    fmt = json.loads(r.stdout.splitlines()[0])["format"]
    assert (fmt["rate"], fmt["bits"], fmt["channels"], fmt["chosen"]) == (48000, 32, 2, True)


def test_explicit_format_that_cannot_fit_is_refused_with_what_fits():
    r = i2s("test", "-p", "sim://rp2?loopback=0%3E1", "-r", "48000", "-b", "32", "-c", "2", check=4)
    err = r.stderr.strip().splitlines()[-1]
    assert "48000 Hz 32-bit stereo" in err and "TX and RX at once" in err
    assert "fits: -r " in err and "-b 16" not in err and "-c 1" not in err  # neither fits at 48 kHz 32-bit
    assert "testing" not in r.stderr  # refused before anything played


def test_a_given_part_is_kept():
    r = i2s("test", "-p", "sim://rp2?loopback=0%3E1", "-b", "16", "--json", "-d", "0.3s", check=0, timeout=120)
    res = json.loads(r.stdout.splitlines()[0])
    assert res["bits"] == 16 and res["format"]["chosen"] is True


def test_no_probe_takes_the_default_unchecked():
    r = i2s("test", "-p", "sim://fast?loopback=0%3E1", "--no-probe", "--json", "-d", "0.3s", check=0)
    fmt = json.loads(r.stdout.splitlines()[0])["format"]
    assert (fmt["rate"], fmt["bits"], fmt["channels"], fmt["link_share"]) == (48000, 32, 2, None)


def test_order_of_preference():
    order = candidates(None, None, None)
    assert order[:4] == [BusFormat(48000, 32, 2), BusFormat(48000, 16, 2), BusFormat(48000, 32, 1),
                         BusFormat(48000, 16, 1)]
    assert order[4] == BusFormat(44100, 32, 2) and order[-1] == BusFormat(8000, 16, 1)
    assert candidates(22050, None, 1) == [BusFormat(22050, 32, 1), BusFormat(22050, 16, 1)]


def test_coded_loop_on_stm32_brings_the_signal_back_bit_exact(tmp_path):
    """48 kHz 16-bit needs coding on the pyboard's link with both directions busy: TX decoded and
    RX coded on the board, and what the loopback brought back is the played signal, sample for
    sample."""
    import numpy as np
    import soundfile as sf

    from i2scli import analysis

    rec = tmp_path / "rec.wav"
    r = i2s("test", "-p", "sim://stm32?loopback=1%3E2,delay=37smp", "--json", "-d", "0.6s",
            "--save-recording", rec, check=0, timeout=120)
    res = json.loads(r.stdout.splitlines()[0])
    fmt = res["format"]
    assert fmt["coded"] and (fmt["rate"], fmt["bits"]) == (48000, 16)  # stereo, unless a loaded probe said mono
    code = res["board_summary"]["code"]
    assert code["frames_coded"] > 0 and code["errors"] == 0
    played, info = analysis.test_signal("sine", rate=48000, bits=16, channels=fmt["channels"], seconds=0.6)
    got, _ = sf.read(rec, dtype="int16", always_2d=True)
    at = res["measures"]["channels"][0]["latency_total_samples"]  # < 0: RX opened after TX started
    want = played.astype(np.int16)[max(-at, 0):]
    assert np.array_equal(got[max(at, 0):max(at, 0) + len(want)], want)
    assert len(want) > 0.9 * len(played)
