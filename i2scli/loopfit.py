"""Which format `i2s test` runs at: the best standard one the link carries with both directions
busy at once, or the one the user gave, refused when it cannot fit (docs/test.md, "Format").

The loop mode sends the test signal to the board and brings the recording back at the same
time. The link probe measures each direction alone, so both are charged: on a board's own USB
port the two directions share one full-speed bus (and the board's CPU), so their shares of what
the probe measured add up; on a UART the wire is full duplex, so the larger share counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from i2scli import protocol
from i2scli.busformat import BusFormat, describe_format
from i2scli.link import Agent, TooFast

#: The order of preference (docs/test.md): rate first, then both channels (a one-channel test
#: misses a swapped or dead channel), then the wider sample.
RATES = (48000, 44100, 32000, 24000, 22050, 16000, 11025, 8000)
CHANNELS = (2, 1)
BITS = (32, 16)
DEFAULT = BusFormat(48000, 32, 2)  # with --no-probe: nothing to measure against
#: The most of the one-way probes a loop may take, both directions counted: they do not see what
#: two buses and two streams cost the board together (the two-way probe of issue 16.2 will).
#: Measured on the virtual boards: loops at 43-51 % ran clean, 65-76 % underran.
LOOP_HEADROOM = 0.5


@dataclass(frozen=True)
class Choice:
    bus: BusFormat
    chosen: bool  # picked by i2s (False: the user gave every part of it)
    share: float | None  # of the link the loop uses, both directions counted; None: not measured
    why: str  # one line for the user

    def to_dict(self) -> dict:
        return {"rate": self.bus.rate, "bits": self.bus.bits, "channels": self.bus.channels,
                "chosen": self.chosen, "link_share": None if self.share is None else round(self.share, 3),
                "why": self.why}


def candidates(rate: int | None, bits: int | None, channels: int | None) -> list[BusFormat]:
    """Standard formats in order of preference, keeping the parts the user gave."""
    return [BusFormat(r, b, c) for r in ((rate,) if rate else RATES)
            for c in ((channels,) if channels else CHANNELS) for b in ((bits,) if bits else BITS)]


def link_share(agent: Agent, bus: BusFormat, payload: int, fresh: bool = False) -> float:
    """The share of the link a loop at `bus` takes, both directions counted (see the module)."""
    rates = agent.link_rates(fresh)
    wire = protocol.stream_rate(bus.rate, bus.bits, bus.channels, payload)
    up, down = wire / rates["up"], wire / rates["down"]
    return max(up, down) if agent.baud else up + down


def choose(agent: Agent, payload_for, given: tuple[int | None, int | None, int | None],
           probe: bool = True, fresh: bool = False, min_rate: float = 0.0) -> Choice:
    """The format of this loop test. `payload_for(bus)` is the DATA payload a stream of that
    format gets; `given` the user's (rate, bits, channels), None where not given; `min_rate`
    a rate the signal needs to be under Nyquist. TooFast (exit 4) when nothing given fits."""
    rate, bits, channels = given
    if all(given):
        bus = BusFormat(rate, bits, channels)
        if not probe:
            return Choice(bus, False, None, f"{bus.describe()} as given (--no-probe: not checked against the link)")
        share = link_share(agent, bus, payload_for(bus), fresh)
        if share > LOOP_HEADROOM:
            raise TooFast(f"{bus.describe()} needs {share:.0%} of the link to {agent.describe()} with TX and RX "
                          f"at once (at most {LOOP_HEADROOM:.0%}): {_alternatives(agent, payload_for, bus)}")
        return Choice(bus, False, share, f"{bus.describe()} as given ({share:.0%} of the link both ways)")
    if not probe:
        bus = BusFormat(rate or DEFAULT.rate, bits or DEFAULT.bits, channels or DEFAULT.channels)
        return Choice(bus, True, None, f"{bus.describe()}: the default (--no-probe: not checked against the link)")
    tried = [b for b in candidates(rate, bits, channels) if b.rate > min_rate]
    first = None
    for bus in tried:
        share = link_share(agent, bus, payload_for(bus), fresh)
        first = first or (bus, share)
        if share <= LOOP_HEADROOM:
            why = f"{bus.describe()}: the best standard format the link to {agent.describe()} carries " \
                  f"with TX and RX at once ({share:.0%} of it)"
            if bus != tried[0]:
                why += f"; {tried[0].describe()} would need {first[1]:.0%}"
            return Choice(bus, True, share, why)
    what = describe_format(rate, bits, channels) or "any standard format"
    raise TooFast(f"the link to {agent.describe()} cannot carry a loop test at {what} with TX and RX at once "
                  f"(the least, {tried[-1].describe()}, needs "
                  f"{link_share(agent, tried[-1], payload_for(tried[-1])):.0%} of it)" if tried else
                  f"no standard format above {min_rate:g} Hz for this signal")


def _alternatives(agent: Agent, payload_for, bus: BusFormat) -> str:
    """What fits instead of `bus`: the best format changing one part, then the best of all."""
    def fits(b: BusFormat) -> bool:
        return link_share(agent, b, payload_for(b)) <= LOOP_HEADROOM

    said = []
    rate = next((r for r in RATES if r < bus.rate and fits(BusFormat(r, bus.bits, bus.channels))), None)
    if rate:
        said.append(f"-r {rate}")
    if bus.bits == 32 and fits(BusFormat(bus.rate, 16, bus.channels)):
        said.append("-b 16")
    if bus.channels == 2 and fits(BusFormat(bus.rate, bus.bits, 1)):
        said.append("-c 1")
    best = next((b for b in candidates(None, None, None) if fits(b)), None)
    if best is not None and not said:
        said.append(f"{best.describe()} (-r {best.rate} -b {best.bits} -c {best.channels})")
    if best is not None:
        said.append("or no -r/-b/-c to let i2s test choose")
    return ("fits: " + ", ".join(said)) if said else "no standard format fits"
