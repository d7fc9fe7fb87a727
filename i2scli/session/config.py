"""A connected board read as a plan's facts, the plan carried out as far as the board must help (its
wire coder loaded), and a START config described for people."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from i2scli.audio.busformat import BusFormat
from i2scli.link import Agent
from i2scli.session import plan, ring, sizes
from i2scli.session.options import BusOptions, DuplexOptions
from i2scli.session.refusal import Refusal
from i2scli.session.sizes import Facts
from i2scli.targets import boards


def facts(agent: Agent, link: dict | None = None) -> Facts:
    """What `agent` has said so far; `link`: the link's rates, when they were asked for."""
    return Facts(hello=agent.hello or {}, identity=agent.identity or {}, board=agent.describe(), link=link,
                 stall=(agent.rates or {}).get("stall"))


def ask(agent: Agent, opts: BusOptions) -> Facts:
    """The board's facts, with the link's rates (measured now, or remembered) when a plan
    checks the stream against them."""
    link = agent.link_rates(opts.fresh_probe) if plan.needs_link(agent.hello or agent.identity, opts) else None
    return facts(agent, link)


def load_coder(agent: Agent, direction: str, mode: dict | None = None) -> str | None:
    """The coder on the board (loaded now if need be), the agent started again with the
    modules of the stream `mode` (START-like: mode, io); why not, when it cannot be."""
    if agent.load_coder("Decoder" if direction == "up" else "Encoder", mode):
        return None
    return f"the board could not load the decoder ({agent.launcher.coder_error})"


def carry_out(agent: Agent, make: Callable[[Facts], plan.Plan | Refusal], f: Facts) -> plan.Plan:
    """The plan `make(f)` with the coder parts it needs loaded on the board; a part the board
    cannot load becomes a fact, and the stream is planned again without it. A refusal is raised."""
    while True:
        p = make(f)
        if isinstance(p, Refusal):
            raise p.error()
        for direction, mode in p.load:
            why = load_coder(agent, direction, mode)
            if why is not None:
                f = replace(f, coder_errors={**f.coder_errors, direction: why})
                break
        else:
            return p


# -- the START config, for callers that hold an agent ---------------------------------------------

def preset(agent: Agent, opts: BusOptions) -> boards.Board | None:
    return sizes.preset(facts(agent), opts)


def bus_config(agent: Agent, opts: BusOptions, mode: str, bus: BusFormat,
               modes: tuple[str, ...] | None = None) -> dict:
    """The START config for the agent: pins from the preset and overrides, sizes that fit."""
    return sizes.config(facts(agent), opts, mode, bus, modes)


def stream_sizes(agent: Agent, opts: BusOptions, mode: str, bus: BusFormat,
                 board: boards.Board | None, modes: tuple[str, ...] | None = None) -> dict:
    """The START config but the pins: format, ring, payload and timeout that fit the board."""
    return sizes.sizes(facts(agent), opts, mode, bus, board, modes)


def payload(agent: Agent, mode: str, bus: BusFormat) -> int:
    """Audio bytes per DATA frame of a stream in `mode` (tx: to the board)."""
    return sizes.payload(facts(agent), mode, bus)


def duplex_config(agent: Agent, opts: BusOptions, dx: DuplexOptions, bus: BusFormat, rx_frames: int) -> dict:
    return sizes.duplex_config(facts(agent), opts, dx, bus, rx_frames)


def why_not_code(agent: Agent, opts: BusOptions) -> str | None:
    return plan.why_not_code(agent.hello or agent.identity, opts)


def describe_config(cfg: dict, agent: Agent, mode: str = "tx") -> str:
    pins = f"I2S({cfg['id']}) sck={cfg['sck']} ws={cfg['ws']} sd={cfg['sd']}"
    if cfg.get("mck") is not None:
        pins += f" mck={cfg['mck']}"
    bus = BusFormat(cfg["rate"], cfg["bits"], 2 if cfg["format"] == "stereo" else 1)
    return f"{agent.describe()}: {bus.describe()}, {pins}, {describe_ring(cfg, agent, mode)}, {cfg['io']} io"


RING_WHY = {"ibuf": "--ibuf", "buffer-time": "--buffer-time", "latency": "--latency", "time": "default",
            "ram": "the board's RAM",
            "stream": "the whole stream"}


def buffer_time(cfg: dict, agent: Agent, mode: str = "tx") -> float:
    """Seconds of the stream the ring (cfg's ibuf) holds on this board, in `mode`'s direction."""
    bus = BusFormat(cfg["rate"], cfg["bits"], 2 if cfg["format"] == "stereo" else 1)
    return ring.ring_seconds(cfg["ibuf"], bus, (agent.hello or agent.identity).get("platform", ""), mode)


def describe_ring(cfg: dict, agent: Agent, mode: str = "tx") -> str:
    """`ibuf 9728 (50 ms: the whole stream)`: the ring, the audio it holds, and what chose it."""
    why = RING_WHY.get(cfg.get("_ring", ""), "")
    return f"ibuf {cfg['ibuf']} ({buffer_time(cfg, agent, mode) * 1000:.0f} ms{': ' + why if why else ''})"
