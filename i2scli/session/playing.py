"""play: ask the board and the link, plan, load the coder the plan needs, then stream file -> board."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

from i2scli import audio
from i2scli.audio import fit
from i2scli.audio.busformat import BusFormat
from i2scli.link import Agent, LinkError
from i2scli.session import config, plan
from i2scli.session.options import BusOptions
from i2scli.session.report import Watch, board_counts, compression, levels, probe_kind, settings, xruns_drop_probe

PEEK_SECONDS = 2.0  # of a file, to estimate how well it compresses before starting
STREAM_PEEK_SECONDS = 0.25  # of a stream (a pipe): a live source is not held back for longer

#: what play tells its caller about --fit: (the estimate, None: sent as it is; the stream as asked for;
#: the link rate, None: not measured)
OnFit = Callable[[fit.Estimate | None, BusFormat, float | None], None]


class Head:
    """The source's first blocks, read when a plan first asks for them (how well the stream
    compresses, what would fit), and played first."""

    def __init__(self, source: Iterator[bytes], want: int):
        self.source, self.want = source, want
        self.blocks: list[bytes] = []
        self.read = False

    def __call__(self) -> bytes:
        if not self.read:
            self.read = True
            got = 0
            for block in self.source:
                self.blocks.append(block)
                got += len(block)
                if got >= self.want:
                    break
        return b"".join(self.blocks)


def play(agent: Agent, port: str, source: Iterator[bytes], bus: BusFormat, opts: BusOptions, *,
         stop: threading.Event | None = None, watch: Watch | None = None, stats: audio.ConvertStats | None = None,
         on_ready: Callable[[dict], None] | None = None, on_fit: OnFit | None = None,
         peek_seconds: float = PEEK_SECONDS) -> dict:
    """Stream wire-format blocks to I2S TX. Stops early (gracefully) when stop is set. An empty
    block means that the source has nothing yet (a pipe): the link is tended meanwhile.

    A stream the link cannot carry is refused (TooFast, carrying the Refusal) saying what would
    fit; with opts.fit it is made to fit (audio/fit.py) and `on_fit` hears how."""
    agent.require_i2s()
    watch = watch or Watch()
    watch.levels = watch.levels or audio.Levels(bus)
    source = iter(source)
    head = Head(source, int(peek_seconds * bus.bytes_per_second))
    f = config.ask(agent, opts)
    p = config.carry_out(agent, lambda f: plan.play(f, opts, bus, head), f)
    if p.fit is not None:
        p = plan.resized(p, config.facts(agent, f.link), opts)
    watch.link_rate = p.link_rate
    fitter = None
    if p.fit is not None:
        fitter = fit.Fitter(bus, p.bus, p.cfg["payload"] // p.bus.frame_bytes if p.fit.near_lossless else None)
        watch.levels = audio.Levels(p.bus)
    if opts.fit and on_fit:
        on_fit(p.fit, bus, p.link_rate)
    blocks = itertools.chain(head.blocks, source)
    if fitter is not None:
        blocks = fitted(fitter, blocks)
    if on_ready:
        on_ready(p.cfg)
    return stream_play(agent, port, blocks, bus, p, opts, stop=stop, watch=watch, stats=stats, fitter=fitter)


def stream_play(agent: Agent, port: str, source: Iterator[bytes], bus: BusFormat, p: plan.Plan, opts: BusOptions,
                *, stop: threading.Event | None, watch: Watch, stats: audio.ConvertStats | None,
                fitter: fit.Fitter | None) -> dict:
    """Send `source` (blocks at the plan's bus) as `p` says; the summary `--json` prints. `bus`:
    the stream as asked for (the display counts in its frames)."""
    cfg, sent_bus = p.cfg, p.bus
    interrupted = False

    def blocks():
        nonlocal interrupted
        for block in source:
            if stop is not None and stop.is_set():
                interrupted = True
                return
            if block:
                watch.levels.feed(block)
                if watch.first_audio is None:
                    watch.first_audio = time.monotonic()
            yield block

    sent_frames = 0

    def progress(sent: int):  # in frames of the stream as it was asked for (the display's rate)
        nonlocal sent_frames
        sent_frames = sent // sent_bus.frame_bytes
        watch.frames = sent_frames * bus.rate // sent_bus.rate

    def summary(report: dict | None) -> dict:
        # a stream that failed has no board report: what was sent is what is known
        frames = report.get("frames", 0) if report is not None else sent_frames
        clipped = (stats.clipped if stats else 0) + (fitter.clipped if fitter else 0)
        fitted = fitter.summary() if fitter else lossless_fit(bus) if opts.fit else None
        return {
            "action": "played", "settings": settings(port, agent, cfg), "frames": frames,
            "seconds": frames / sent_bus.rate, "rate": sent_bus.rate, "bits": sent_bus.bits,
            "channels": sent_bus.channels,
            **(board_counts(report) if report is not None else {}), **levels(watch.levels.summary()),
            "clipped": clipped, "nonfinite": stats.nonfinite if stats else 0,
            "link_rate": watch.link_rate, "link_probe": probe_kind(agent),
            "compression": compression(report, sent_bus) if report is not None else None, "fit": fitted,
            "start_latency": (watch.first_audio - watch.started) if watch.first_audio else None,
            "interrupted": interrupted if report is not None else bool(stop is not None and stop.is_set()),
            "board": report,
        }

    try:
        s = agent.play(cfg, blocks(), progress=progress)
    except (LinkError, audio.AudioError) as e:
        e.partial = summary(None)  # what was sent before it failed (--json prints it)
        raise
    xruns_drop_probe(agent, s)
    return summary(s)


def lossless_fit(bus: BusFormat) -> dict:
    """The summary's `fit` of a --fit stream that fit as it was."""
    return {"method": "lossless", "bits_removed": {"mean": 0.0, "max": 0}, "rate": bus.rate,
            "channels": bus.channels, "snr_db": None}


def fitted(fitter: fit.Fitter, source: Iterator[bytes]) -> Iterator[bytes]:
    """`source` made to fit as `fitter` does it."""
    for block in source:
        yield fitter.feed(block) or b""  # b"": nothing yet (the link is tended meanwhile)
    tail = fitter.finish()
    if tail:
        yield tail
