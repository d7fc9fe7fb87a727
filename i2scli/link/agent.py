"""The agent on a connected board, as the commands use it: connect, measure the link, run
one mode at a time. Each concern lives in its own room; this is the thin layer over them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from i2scli.errors import visible
from i2scli.link import duplex as _duplex
from i2scli.link import loop as _loop
from i2scli.link import modes, probe_cache
from i2scli.link.errors import BoardError
from i2scli.link.launch import Launcher
from i2scli.link.port import Port, open_transport, port_name

LINK_HEADROOM = 0.9  # use at most this share of the measured link rate


class Agent:
    """The agent running on a connected board; one stream at a time."""

    def __init__(self, transport, port: str, *, baud: str | int = "off", warn: Callable[[str], None] | None = None,
                 expect: dict | None = None):
        self.port = port
        self.link = Port(transport, port)
        self.transport = transport
        self.serial = transport.serial
        self.launcher = Launcher(self.link, baud, warn, expect)
        self.rates: dict | None = None
        self.both_rates: dict | None = None  # the two-way probe's (loop_rates)

    @property
    def baud(self) -> int | None:
        """The UART rate in use (None: the link has no baud rate, e.g. native USB)."""
        return self.launcher.baud

    @property
    def hello(self) -> dict:
        return self.launcher.hello

    @property
    def identity(self) -> dict:
        return self.launcher.identity

    def launch(self, timeout: float = 10.0) -> dict:
        """Run the agent (the installed copy when its version matches, else uploaded)."""
        return self.launcher.launch(timeout)

    def load_coder(self, part: str, cfg: dict | None = None) -> bool:
        """Make a part of the wire coder available on the board (see Launcher.load_coder)."""
        return self.launcher.load_coder(part, cfg=cfg)

    def describe(self) -> str:
        """The board as people know it, e.g. 'Raspberry Pi Pico with RP2040 (rp2)'."""
        who = self.hello or self.identity
        return visible(f"{who.get('machine', 'board')} ({who.get('platform', '?')})")  # the board's words

    def require_i2s(self) -> None:
        if not (self.hello or self.identity).get("i2s"):
            raise BoardError(
                f"{self.describe()} at {self.port} has no machine.I2S: its MicroPython firmware "
                f"was built without it (use a firmware or board with I2S support)")

    def link_rates(self, fresh: bool = False) -> dict:
        """What the link carries each way (bytes/s): measured once per connection, and
        remembered for a while per port and board (probe_cache) unless `fresh`."""
        if self.rates is None or (fresh and self.rates.get("cached")):
            self.rates = self._measured(False, self.probe, fresh)
        return self.rates

    def loop_rates(self, fresh: bool = False) -> dict:
        """What the link carries each way (bytes/s) with both directions busy at once, as the
        loop mode keeps them (the two-way probe): measured once per connection and remembered
        beside the one-way rates (its own probe_cache entry) unless `fresh`."""
        if self.both_rates is None or (fresh and self.both_rates.get("cached")):
            self.both_rates = self._measured(True, self.probe_both, fresh)
        return self.both_rates

    def _measured(self, two_way: bool, probe: Callable[[], dict], fresh: bool) -> dict:
        """The rates remembered for this port and board, or (when `fresh` or none are) those `probe`
        measures, remembered."""
        if not self.hello:
            self.launch()
        key = self._cache_key(two_way)
        cached = None if fresh else probe_cache.load(key)
        if cached is not None:
            return {**cached, "cached": True}
        rates = probe()
        probe_cache.store(key, rates)
        return rates

    def forget_rates(self) -> None:
        """The stream under- or overran: the remembered rates may be wrong; probe next time."""
        if self.identity:
            probe_cache.drop(self._cache_key())
            probe_cache.drop(self._cache_key(two_way=True))

    def _cache_key(self, two_way: bool = False) -> str:
        return probe_cache.key(self.port, self.identity, self.baud, two_way)

    # -- the modes ----------------------------------------------------------------------------
    def play(self, cfg: dict, blocks: Iterable[bytes], progress: Callable[[int], None] | None = None) -> dict:
        return modes.play(self.launcher, cfg, blocks, progress)

    def record(self, cfg: dict, on_data: Callable[[bytes], None], stop: threading.Event | None = None) -> dict:
        return modes.record(self.launcher, cfg, on_data, stop)

    def duplex(self, cfg: dict, tx_blocks: Iterable[bytes], on_rx: Callable[[bytes], None],
               switch: threading.Event | None = None, stop: threading.Event | None = None,
               on_phase: Callable[[str], None] | None = None) -> dict:
        return _duplex.duplex(self.launcher, cfg, tx_blocks, on_rx, switch, stop, on_phase)

    def loop(self, cfg: dict, played: bytes, on_rx: Callable[[bytes], None],
             stop: threading.Event | None = None) -> dict:
        """Full duplex on two buses: play `played` on cfg['tx'], record cfg['frames'] from cfg['rx']."""
        return _loop.loop(self.launcher, cfg, played, on_rx, stop)

    def probe(self, up: int = 8192, down: int = 16384) -> dict:
        return modes.probe(self.launcher, up, down)

    def probe_both(self, seconds: float = modes.TWO_WAY_SECONDS) -> dict:
        """The two-way probe: both directions streaming at once (modes.probe_both)."""
        return modes.probe_both(self.launcher, seconds)

    def close(self) -> None:
        self.launcher.stop()


@contextmanager
def connect(port: object, *, launch: bool = True, timeout: float = 10.0, baud: str | int = "auto",
            warn: Callable[[str], None] | None = None, expect: dict | None = None) -> Iterator[Agent]:
    """A board at `port` (a port URL, or an open pyserial port handed over and handed back open)
    with the agent started (HELLO received), on a UART link at the
    fastest rate its bridge takes (`baud`: auto, off or a rate; `warn` hears a fallback).
    `expect` ({"mode": ..., "io": ...}): the stream the caller will run, whose part of an
    uploaded agent goes with the first upload (any other is uploaded when it is started)."""
    agent = Agent(open_transport(port), port_name(port), baud=baud, warn=warn, expect=expect)
    try:
        if launch:
            agent.launch(timeout)
        yield agent
    finally:
        agent.close()
