"""duplex: one record-then-play (or play-then-record) exchange with the switch on the board, planned
first (--fit's choice, each half's coding), then streamed both ways."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from i2scli import audio
from i2scli.audio import fit
from i2scli.audio.busformat import BusFormat
from i2scli.link import Agent, LinkError
from i2scli.session import config, plan
from i2scli.session.options import BusOptions, DuplexOptions, RecordStop
from i2scli.session.recording import StopRule
from i2scli.session.refusal import Refusal
from i2scli.session.report import Watch, board_counts, compression, levels, probe_kind, settings, xruns_drop_probe


class EchoSource:
    """TX audio that is the recording itself (echo test): pulls what has arrived so far;
    yields b'' while the recording is still coming, ends when it is all sent."""

    def __init__(self):
        self.chunks: list[bytes] = []
        self.done = False

    def add(self, data: bytes) -> None:
        self.chunks.append(data)

    def __iter__(self):
        while True:
            if self.chunks:
                yield self.chunks.pop(0)
            elif self.done:
                return
            else:
                yield b""


def duplex_ratio(agent: Agent, bus: BusFormat, head: Callable[[], bytes] | None) -> float:
    """What the play half can count on coded: the coder's ratio on the play file's first
    seconds (`head()`); without a file (echo) the recording's floor."""
    return plan.duplex_ratio(config.facts(agent), bus, head)


def fit_duplex(agent: Agent, opts: BusOptions, bus: BusFormat,
               head: Callable[[], bytes] | None = None) -> fit.Estimate | None:
    """Before a duplex exchange (both halves share `bus`): None when it fits as it is or coded
    (duplex() then decides the coding), or the link is not measured; with opts.fit, the rate
    and channels that make it fit, tried on the play file's first seconds (`head()`); else
    TooFast saying what would fit."""
    link = agent.link_rates(opts.fresh_probe) if opts.probe else None
    e = plan.fit_duplex(config.facts(agent, link), opts, bus, head)
    if isinstance(e, Refusal):
        raise e.error()
    return e


def duplex(agent: Agent, port: str, out: audio.Output, tx_source, bus: BusFormat, opts: BusOptions,
           dx: DuplexOptions, until: RecordStop, *, stop: threading.Event | None = None, watch: Watch | None = None,
           echo: EchoSource | None = None, on_ready: Callable[[dict], None] | None = None,
           tx_ratio: float | None = None) -> dict:
    """One record-then-play (or play-then-record) exchange with the switch on the board; coded
    on the wire both ways when a half needs it (`tx_ratio`: what the play half codes at)."""
    agent.require_i2s()
    rx_frames = until.frames or 0
    watch = watch or Watch()
    watch.levels = watch.levels or audio.Levels(bus)
    p = config.carry_out(agent, lambda f: plan.duplex(f, opts, dx, bus, rx_frames if not until.stop_on_silence
                                                      else 0, tx_ratio), config.ask(agent, opts))
    watch.link_rate = p.link_rate
    if on_ready:
        on_ready(p.cfg)
    return stream_duplex(agent, port, out, tx_source, bus, p.cfg, dx, until, rx_frames, stop=stop, watch=watch,
                         echo=echo)


def stream_duplex(agent: Agent, port: str, out: audio.Output, tx_source, bus: BusFormat, cfg: dict,
                  dx: DuplexOptions, until: RecordStop, rx_frames: int, *, stop: threading.Event | None,
                  watch: Watch, echo: EchoSource | None) -> dict:
    """Run the exchange `cfg`: `tx_source` played, RX into `out` as `until` keeps it; the summary."""
    from i2scli import timeline as tl

    switch = threading.Event()
    rule = StopRule(until, bus)

    def on_rx(data: bytes) -> None:
        if switch.is_set() and not rx_frames:
            return
        samples = rule.take(audio.wire_to_array(data, bus))
        if rule.done:
            switch.set()
        raw = np.ascontiguousarray(samples).tobytes()
        out.write(raw)
        watch.levels.feed(raw)
        if echo is not None:
            echo.add(raw)
        watch.frames = rule.kept

    def on_phase(phase: str) -> None:
        if phase == "tx" and echo is not None:
            echo.done = True  # everything recorded is queued by now

    def summary(report: dict | None) -> dict:
        # a stream that failed has no board report: what was recorded is what is known
        s = report or {}
        steps = tl.switches(s.get("timeline", []))
        gaps = s.get("clock_gaps_us", [])
        lv = watch.levels.summary()
        return {
            "action": "duplex", "file": out.path,
            "settings": {**settings(port, agent, {**cfg, **cfg["tx"]}), "rx": cfg["rx"], "tx": cfg["tx"],
                         "dir": cfg["dir"], "dir_rx_level": cfg["dir_rx_level"], "order": cfg["order"],
                         "switch_delay_us": cfg["switch_delay_us"], "lead_in_frames": cfg["lead_in_frames"],
                         "discard_frames": cfg["discard_frames"]},
            "frames": rule.kept, "recorded_frames": rule.kept,
            "played_frames": s.get("tx_frames", 0) if report is not None else None,
            "seconds": rule.kept / bus.rate, "rate": bus.rate, "bits": bus.bits, "channels": bus.channels,
            **(board_counts(s) if report is not None else {}), **levels(lv), "clipped": lv.get("clipped", 0),
            "clock_gaps_us": gaps, "max_clock_gap_us": int(dx.max_clock_gap * 1e6),
            "gap_exceeded": any(g > dx.max_clock_gap * 1e6 for g in gaps),
            "switches": [[{"step": n, "us": t} for n, t in sw] for sw in steps],
            "timeline": s.get("timeline", []), "link_rate": watch.link_rate, "link_probe": probe_kind(agent),
            "compression": compression(s, bus) if report is not None else None,
            "interrupted": bool(stop and stop.is_set()), "board": report,
        }

    try:
        s = agent.duplex(cfg, tx_source, on_rx, switch=switch, stop=stop, on_phase=on_phase)
    except (LinkError, audio.AudioError) as e:
        e.partial = summary(None)  # what was recorded before it failed (--json prints it)
        raise
    finally:
        out.sync()
    xruns_drop_probe(agent, s)
    return summary(s)
