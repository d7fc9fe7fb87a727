"""A pytest plugin for test rigs (installed with i2scli, as the `pytest11` entry point `i2s`).

    pytest --i2s-port sim://rp2?loopback=0>1          # or /dev/ttyACM0, id:SERIAL, labgrid://PLACE

    import numpy as np

    def test_the_dac_path(i2s_board):                 # an open i2scli.device.Device, one per session
        x = (np.random.default_rng(1).integers(-2**15, 2**15, (9600, 1))).astype(np.int16)
        assert np.array_equal(i2s_board.playrec(x, 48000), x)

    def test_the_codec_is_clean(i2s_loop):
        i2s_loop(rate=48000, min_snr=90)               # a failed check fails the test with its line

    @pytest.mark.i2s                                   # skipped when no board is given
    def test_needs_the_rig(): ...

Without `--i2s-port` (or the ini key `i2s_port`, or I2S_TEST_PORT), the fixtures and the `i2s`
marker skip the test, saying why. `--i2s-board` names the pin preset, `--i2s-rig` and
`--i2s-board-name` pick a board from a rig file as the command line's `--rig`/`--board-name` do.
"""

from __future__ import annotations

import os

import pytest

ENV_PORT = "I2S_TEST_PORT"  # not I2S_PORT: a rig's shell may set that for the command line alone


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("i2s", "i2s: MicroPython I2S boards")
    g.addoption("--i2s-port", metavar="PORT", help=f"the board for i2s_board/i2s_loop (env {ENV_PORT})")
    g.addoption("--i2s-board", metavar="NAME", help="its pin preset (default: detected)")
    g.addoption("--i2s-rig", metavar="FILE.toml", help="a rig file (the command line's --rig)")
    g.addoption("--i2s-board-name", metavar="NAME", help="the rig's board to use")
    parser.addini("i2s_port", "the board for i2s_board/i2s_loop")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "i2s: needs a board (--i2s-port); skipped without one")


def _settings(config: pytest.Config) -> dict | None:
    """The port and options of the board the run was given; None when none was."""
    rig, name = config.getoption("--i2s-rig"), config.getoption("--i2s-board-name")
    opts: dict = {}
    if rig:
        from i2scli import rig as rigs

        try:
            board = rigs.pick(rig, name)
        except ValueError as e:  # a setting it names is this plugin's option
            w = getattr(e, "worded", None)
            said = w.say(lambda kind, value: "--i2s-board-name") if w is not None else str(e)
            raise pytest.UsageError(f"--i2s-rig: {said}") from None
        for key in ("port", "board", "baud", "ibuf", "io", "timeout", "id", "sck", "ws", "sd", "mck"):
            if key in board.options:
                opts[key] = board.options[key]
    elif name:
        raise pytest.UsageError("--i2s-board-name needs --i2s-rig FILE.toml")
    port = config.getoption("--i2s-port") or opts.pop("port", None) or config.getini("i2s_port") \
        or os.environ.get(ENV_PORT)
    if not port:
        return None
    if config.getoption("--i2s-board"):
        opts["board"] = config.getoption("--i2s-board")
    return {"port": port, **opts}


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("i2s") is not None and _settings(item.config) is None:
        pytest.skip(f"no I2S board given (--i2s-port PORT or {ENV_PORT})")


@pytest.fixture(scope="session")
def i2s_board(request: pytest.FixtureRequest):
    """The board given to the run, open for the whole session (an i2scli.device.Device)."""
    settings = _settings(request.config)
    if settings is None:
        pytest.skip(f"no I2S board given (--i2s-port PORT or {ENV_PORT})")
    from i2scli.device import open as open_device

    with open_device(settings.pop("port"), **settings) as board:
        yield board


@pytest.fixture
def i2s_loop(i2s_board):
    """Run the loopback test (`i2s test`) on the board: `i2s_loop(rate=..., min_snr=...)` returns
    the i2scli.device.LoopResult, and fails the test with each failed check's line."""

    def run(**options):
        result = i2s_board.test(**options)
        if not result.passed:
            pytest.fail("i2s test failed:\n" + "\n".join(f"FAIL  {line}" for line in result.failed), pytrace=False)
        return result

    return run
