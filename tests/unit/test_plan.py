"""Planning a stream without a board (i2scli/session/plan.py): from what a board and its link said to
the START config, the wire coding and --fit's choice, or a refusal whose alternatives are data; the
library says it without flags, the command line (cli/advice.py) with them."""

from __future__ import annotations

import numpy as np
import pytest

from i2scli.audio.busformat import BusFormat
from i2scli.cli import advice
from i2scli.link import BoardError, TooFast
from i2scli.session import plan
from i2scli.session import refusal as rf
from i2scli.session.options import BusOptions
from i2scli.session.sizes import Facts

CD = BusFormat(44100, 16, 2)
PINS = {"id": 0, "sck": 16, "ws": 17, "sd": 18}
HELLO = {"platform": "rp2", "machine": "a test board", "native": 1, "inbuf": 4096, "mem_free": 150_000}


def facts(up: float | None = 300_000, down: float | None = 300_000, **kw) -> Facts:
    link = None if up is None else {"up": up, "down": down}
    return Facts(hello={**HELLO, **kw}, identity={**HELLO, **kw}, board="a test board (rp2)", link=link)


def noise(bus: BusFormat, seconds: float = 0.25) -> bytes:
    rng = np.random.default_rng(1)
    return rng.integers(-(1 << 15), 1 << 15, (int(bus.rate * seconds), bus.channels), dtype=np.int16).tobytes()


def quiet_tone(bus: BusFormat, seconds: float = 0.25) -> bytes:
    t = np.arange(int(bus.rate * seconds)) / bus.rate
    x = (np.sin(2 * np.pi * 440 * t) * 300).astype(np.int16)
    return np.repeat(x[:, None], bus.channels, axis=1).tobytes()


def test_a_stream_that_fits_is_planned_as_it_is():
    p = plan.play(facts(1_000_000), BusOptions(**PINS), CD, lambda: pytest.fail("the head is read only when needed"))
    assert isinstance(p, plan.Plan) and p.bus == CD and p.load == () and p.fit is None
    assert p.link_rate == 1_000_000 and "code" not in p.cfg
    assert (p.cfg["rate"], p.cfg["bits"], p.cfg["format"], p.cfg["sd"]) == (44100, 16, "stereo", 18)


def test_unmeasured_link_plans_without_a_check():
    p = plan.record(facts(None), BusOptions(**PINS), CD, frames=1000)
    assert p.link_rate is None and p.cfg["frames"] == 1000 and p.load == ()


def test_a_stream_that_needs_coding_asks_for_the_coder_first():
    p = plan.play(facts(150_000), BusOptions(**PINS), CD, lambda: quiet_tone(CD))
    assert p.cfg["code"] == 1 and p.cfg["code_ratio_estimate"] > 2
    assert p.load == (("up", {"mode": "tx", "io": "blocking"}),)


def test_noise_too_fast_even_coded_is_refused_with_alternatives_as_data():
    r = plan.play(facts(150_000), BusOptions(**PINS), CD, lambda: noise(CD))
    assert isinstance(r, rf.Refusal) and r.kind == rf.CODED_TOO_FAST
    assert [a.bus for a in r.alternatives] == [BusFormat(32000, 16, 2), BusFormat(44100, 16, 1)]
    assert r.fit.dst == CD and r.fit.near_lossless and r.fit.need <= 150_000 * 0.9
    plain = r.message()
    assert "kB/s" in plain and " -r " not in plain and "--fit" not in plain
    assert "fits: 32000 Hz, mono, or made to fit (near-lossless" in plain
    cli = advice.words(r.error())
    assert "compression cannot help" in cli and "fits: -r 32000, -c 1, or --fit (near-lossless" in cli
    assert isinstance(r.error(), TooFast)


def test_a_coder_the_board_cannot_load_is_planned_around():
    f = facts(150_000)
    f = Facts(f.hello, f.identity, f.board, f.link, coder_errors={"up": "the board could not load the decoder (x)"})
    r = plan.play(f, BusOptions(**PINS), CD, lambda: quiet_tone(CD))
    assert r.kind == rf.TOO_FAST and r.uncompressed.startswith("the board could not load")
    assert advice.words(r.error()).startswith("44100 Hz 16-bit stereo (uncompressed: the board could not load")


def test_fit_chooses_what_fits_and_says_what_it_cannot():
    p = plan.play(facts(150_000), BusOptions(**PINS, fit=True), CD, lambda: noise(CD))
    assert isinstance(p, plan.Plan) and p.fit is not None and p.bus == p.fit.dst
    assert p.cfg["rate"] == p.bus.rate and p.link_rate == 150_000
    r = plan.play(facts(2_000), BusOptions(**PINS, fit=True, rate=44100), CD, lambda: noise(CD))
    assert r.kind == rf.CANNOT_FIT
    assert advice.words(r.error()).endswith("(measured): keeping the -r 44100 you gave")
    assert r.message().startswith("cannot make 44100 Hz 16-bit stereo fit") and "-r" not in r.message()


def test_recording_refusal_counts_on_the_floor_ratio():
    bus = BusFormat(48000, 32, 2)
    r = plan.record(facts(down=200_000), BusOptions(**PINS), bus)
    assert r.kind == rf.CODED_TOO_FAST and r.ratio == plan.RX_RATIO_FLOOR[32] and not r.ratio_measured
    assert advice.words(r.error()).endswith("recordings can count on 1.30:1), but the link to a test board (rp2) "
                                            "carries 200.0 kB/s (measured): fits: -r 24000 (coded about 1.3:1) or "
                                            "-c 1 (coded about 1.3:1)")


def test_coding_asked_of_a_board_without_viper_is_a_board_error():
    r = plan.play(facts(native=0), BusOptions(**PINS, compress="on"), CD, bytes)
    assert r.kind == rf.CANNOT_CODE and not plan.needs_link(facts(native=0).who, BusOptions(compress="on"))
    e = r.error()
    assert isinstance(e, BoardError) and not isinstance(e, TooFast)
    assert str(e) == "cannot compress this stream: the board's firmware runs no viper code, which the decoder is"
