"""Which format `i2s test` runs at: the best standard one the link carries with both directions
busy at once, or the one the user gave, refused when it cannot fit (docs/test.md, "Format").

The loop mode sends the test signal to the board and brings the recording back at the same
time, so it is checked against the two-way probe (Agent.loop_rates: both directions measured
while both stream, as the loop keeps them): what a board's USB bus, its UART and its one CPU
leave each direction with the other busy is in those figures. The probe answers each frame with
one as long, so it measures the 1:1 load; a coded loop's way back carries more than its way in
(the recording is not counted on to code as well), and for that the one-way probes say how far
each direction reaches alone (load_share).
"""

from __future__ import annotations

from dataclasses import dataclass

from i2scli import protocol
from i2scli.audio.busformat import BusFormat, describe_format
from i2scli.errors import worded
from i2scli.link import Agent, TooFast
from i2scli.session import RX_RATIO_FLOOR

#: The order of preference (docs/test.md): rate first, then both channels (a one-channel test
#: misses a swapped or dead channel), then the wider sample.
RATES = (48000, 44100, 32000, 24000, 22050, 16000, 11025, 8000)
CHANNELS = (2, 1)
BITS = (32, 16)
DEFAULT = BusFormat(48000, 32, 2)  # with --no-probe: nothing to measure against
#: The most of the two-way probe a loop may take in either direction (docs/test.md, "Format").
#: Measured on the virtual boards on a loaded 2-core machine (Dec 2026, raw loops, 3 runs each):
#: at 0.87-0.95 of it stm32 and esp32 underran in every run but one (100-240 xruns on stm32), at
#: 0.62-0.70 about half the runs had a few, at 0.47-0.50 most ran clean. The probe and the loop
#: are both one frame in flight on a 512-byte window, so a loaded host's latency moves both; the
#: loop's board side also pays the simulator's I2S model, which the probe does not. 0.5 holds; a
#: real board, never descheduled, may carry more (0.9 was the aim), unmeasured here.
LOOP_MARGIN = 0.5


MAX_RATIO = 4.0  # a format that would need more than this to fit is not worth coding to find out


@dataclass(frozen=True)
class Choice:
    bus: BusFormat
    chosen: bool  # picked by i2s (False: the user gave every part of it)
    share: float | None  # of the two-way probe the loop uses, the busier way; None: not measured
    why: str  # one line for the user
    ratio: float | None = None  # coded on the wire at about this ratio (None: raw)
    probe: dict | None = None  # the two-way probe's rates it was judged against

    def to_dict(self) -> dict:
        p = self.probe
        return {"rate": self.bus.rate, "bits": self.bus.bits, "channels": self.bus.channels,
                "chosen": self.chosen, "link_share": None if self.share is None else round(self.share, 3),
                "link_margin": None if self.share is None else LOOP_MARGIN,
                "two_way_probe": None if p is None else {"up": round(p["up"]), "down": round(p["down"]),
                                                         "remembered": bool(p.get("cached"))},
                "coded": self.ratio is not None, "code_ratio_estimate": None if self.ratio is None
                else round(self.ratio, 3), "why": self.why}


def candidates(rate: int | None, bits: int | None, channels: int | None) -> list[BusFormat]:
    """Standard formats in order of preference, keeping the parts the user gave."""
    return [BusFormat(r, b, c) for r in ((rate,) if rate else RATES)
            for c in ((channels,) if channels else CHANNELS) for b in ((bits,) if bits else BITS)]


def link_share(agent: Agent, bus: BusFormat, payload: int, fresh: bool = False, ratio: float = 1.0) -> float:
    """The share of what the link carries with both directions busy that a loop at `bus` takes
    (see the module); coded at `ratio`, which the recording is counted on only as far as any
    recording is (the RX side codes what the loopback brings back: its noise too)."""
    wire = protocol.stream_rate(bus.rate, bus.bits, bus.channels, payload)
    return load_share(agent.link_rates(fresh), agent.loop_rates(fresh), wire / ratio,
                      wire / min(ratio, RX_RATIO_FLOOR.get(bus.bits, 1.0)))


def load_share(one_way: dict, both: dict, up: float, down: float) -> float:
    """How much of the link a load of `up` and `down` bytes/s at once takes: 1.0 on the edge of
    what it carries. The link is known at three points: each way alone (one-way probe: U, D) and
    both at once at the loop's 1:1 load (two-way probe: Ru, Rd). What shares a bus, a UART or a
    CPU carries a convex set of loads, so the polygon (0,0)-(U,0)-(Ru,Rd)-(0,D) is inside it: the
    share is the load's gauge in that polygon, the larger of its two upper edges' (equal loads:
    the larger of up/Ru and down/Rd; a coded loop, whose way back carries more than its way in,
    leans toward D)."""
    u_max, d_max = one_way["up"], one_way["down"]
    ru, rd = min(both["up"], u_max), min(both["down"], d_max)  # a probe's noise: never out of the polygon
    toward_u = up / u_max + down * (1 - ru / u_max) / rd  # the edge (U,0)-(Ru,Rd)
    toward_d = up * (1 - rd / d_max) / ru + down / d_max  # the edge (Ru,Rd)-(0,D)
    return max(toward_u, toward_d)


def _fits(agent: Agent, bus: BusFormat, payload: int, fresh: bool, ratio_for) -> tuple[float, float | None]:
    """(share, ratio): raw when that fits, else coded at the test signal's ratio where coding
    makes it fit (ratio None: raw)."""
    share = link_share(agent, bus, payload, fresh)
    if share <= LOOP_MARGIN or ratio_for is None or share / MAX_RATIO > LOOP_MARGIN:
        return share, None
    ratio = ratio_for(bus)
    coded = link_share(agent, bus, payload, fresh, ratio)
    return (coded, ratio) if coded <= LOOP_MARGIN else (share, None)


def _said(share: float, ratio: float | None) -> str:
    return f"{share:.0%} of it" + (f", coded about {ratio:.1f}:1" if ratio else "")


def choose(agent: Agent, payload_for, given: tuple[int | None, int | None, int | None],
           probe: bool = True, fresh: bool = False, min_rate: float = 0.0, ratio_for=None) -> Choice:
    """The format of this loop test. `payload_for(bus)` is the DATA payload a stream of that
    format gets; `given` the user's (rate, bits, channels), None where not given; `min_rate`
    a rate the signal needs to be under Nyquist; `ratio_for(bus)` what the test signal codes
    at (None: the board cannot code). TooFast (exit 4) when nothing given fits."""
    rate, bits, channels = given
    if all(given):
        bus = BusFormat(rate, bits, channels)
        if not probe:
            return Choice(bus, False, None, f"{bus.describe()} as given (--no-probe: not checked against the link)")
        share, ratio = _fits(agent, bus, payload_for(bus), fresh, ratio_for)
        if share > LOOP_MARGIN:
            raise worded(TooFast, f"{bus.describe()} needs {share:.0%} of the link to {agent.describe()} with TX "
                         f"and RX at once (at most {LOOP_MARGIN:.0%}"
                         + (", even coded" if ratio_for is not None else "") + "): ",
                         *_alternatives(agent, payload_for, bus, ratio_for))
        return Choice(bus, False, share, f"{bus.describe()} as given ({_said(share, ratio)} both ways)", ratio,
                      agent.loop_rates())
    if not probe:
        bus = BusFormat(rate or DEFAULT.rate, bits or DEFAULT.bits, channels or DEFAULT.channels)
        return Choice(bus, True, None, f"{bus.describe()}: the default (--no-probe: not checked against the link)")
    tried = [b for b in candidates(rate, bits, channels) if b.rate > min_rate]
    first = None
    for bus in tried:
        share, ratio = _fits(agent, bus, payload_for(bus), fresh, ratio_for)
        first = first or (bus, share)
        if share <= LOOP_MARGIN:
            why = f"{bus.describe()}: the best standard format the link to {agent.describe()} carries " \
                  f"with TX and RX at once ({_said(share, ratio)})"
            if bus != tried[0]:
                why += f"; {tried[0].describe()} would need {first[1]:.0%}"
            return Choice(bus, True, share, why, ratio, agent.loop_rates())
    what = describe_format(rate, bits, channels) or "any standard format"
    if not tried:
        raise TooFast(f"no standard format above {min_rate:g} Hz for this signal")
    raise worded(TooFast, f"the link to {agent.describe()} cannot carry a loop test at {what} with TX and RX at "
                 f"once (the least, {tried[-1].describe()}, needs "
                 f"{link_share(agent, tried[-1], payload_for(tried[-1])):.0%} of it, at most {LOOP_MARGIN:.0%}; ",
                 *_measured(agent.loop_rates()), "); give ", ("format", None), " and ", ("no_probe", None),
                 " to run one unchecked")


def _measured(both: dict) -> tuple:
    """What the two-way probe measured, for a refusal: the figures and whether remembered
    (errors.Worded parts)."""
    said = f"measured {both['up'] / 1000:.1f} kB/s up, {both['down'] / 1000:.1f} kB/s down with both busy"
    return (said, " (remembered: ", ("probe", None), " measures again)") if both.get("cached") else (said,)


def _alternatives(agent: Agent, payload_for, bus: BusFormat, ratio_for=None) -> tuple:
    """What fits instead of `bus`: the best format changing one part, then the best of all
    (errors.Worded parts)."""
    def fits(b: BusFormat) -> bool:
        return _fits(agent, b, payload_for(b), False, ratio_for)[0] <= LOOP_MARGIN

    said: list[tuple] = []
    rate = next((r for r in RATES if r < bus.rate and fits(BusFormat(r, bus.bits, bus.channels))), None)
    if rate:
        said.append((("rate", rate),))
    if bus.bits == 32 and fits(BusFormat(bus.rate, 16, bus.channels)):
        said.append((("bits", 16),))
    if bus.channels == 2 and fits(BusFormat(bus.rate, bus.bits, 1)):
        said.append((("channels", 1),))
    best = next((b for b in candidates(None, None, None) if fits(b)), None)
    if best is not None and not said:
        said.append((f"{best.describe()} (", ("bus", best), ")"))
    if best is not None:
        said.append(("or no ", ("format", None), " to let i2s test choose"))
    if not said:
        return ("no standard format fits",)
    return ("fits: ", *[part for i, item in enumerate(said) for part in ((", ",) if i else ()) + item])
