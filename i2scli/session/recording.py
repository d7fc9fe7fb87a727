"""record: ask the board and the link, plan, load the coder the plan needs, then stream board -> file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from i2scli import audio
from i2scli.audio.busformat import BusFormat
from i2scli.link import Agent, LinkError
from i2scli.session import config, plan
from i2scli.session.options import BusOptions, RecordStop
from i2scli.session.report import Watch, board_counts, compression, levels, probe_kind, settings, xruns_drop_probe


class StopRule:
    """A RecordStop applied to the bus samples as they arrive, the one rule record and duplex
    share: `take(block)` returns what of it the file keeps (sound waited for, cut at the frame
    limit) and sets `done` once the limit or the silence is reached."""

    def __init__(self, until: RecordStop, bus: audio.BusFormat):
        self.limit = until.frames if until.frames is not None else until.max_frames
        self.threshold = 10 ** (until.threshold_dbfs / 20) * (2 ** (bus.bits - 1))
        self.quiet_needed = int(until.stop_on_silence * bus.rate) if until.stop_on_silence else None
        self.wait_for_sound = until.wait_for_sound
        self.sound = not until.wait_for_sound
        self.kept = 0  # frames kept so far
        self.quiet = 0  # frames of silence at the end of what was kept
        self.discarded = 0  # frames before the sound came
        self.done = False

    def take(self, samples: np.ndarray) -> np.ndarray:
        """What of `samples` (frames, channels) the file keeps; counted as kept."""
        if self.done:
            return samples[:0]
        if (self.quiet_needed or not self.sound) and len(samples):
            loud = np.abs(samples.astype(np.int64)).max(axis=1) >= self.threshold
        else:
            loud = np.zeros(0, bool)
        if not self.sound:
            hits = np.flatnonzero(loud)
            if not len(hits):
                self.discarded += len(samples)
                return samples[:0]
            self.sound = True
            self.discarded += int(hits[0])
            samples, loud = samples[hits[0]:], loud[hits[0]:]
        if self.limit is not None and self.kept + len(samples) >= self.limit:
            samples, loud = samples[: self.limit - self.kept], loud[: self.limit - self.kept]
            self.done = True
        if self.quiet_needed and len(samples):
            last_loud = np.flatnonzero(loud)
            self.quiet = len(samples) - 1 - int(last_loud[-1]) if len(last_loud) else self.quiet + len(samples)
            if self.quiet >= self.quiet_needed:
                self.done = True
        self.kept += len(samples)
        return samples


def record(agent: Agent, port: str, out: audio.Output, bus: BusFormat, opts: BusOptions, until: RecordStop,
           *, stop: threading.Event | None = None, watch: Watch | None = None,
           on_ready: Callable[[dict], None] | None = None,
           keep: Callable[[np.ndarray], np.ndarray] | None = None,
           after: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """Stream I2S RX into `out` until `until` or `stop`. Every sample received is written,
    also when the link fails (the error is raised after the file has what arrived).
    `keep` turns each block of bus samples (frames, channels) into what the file keeps (in
    `out.bus`'s format: e.g. one slot of a stereo bus, `record --slot`); `after` turns what
    was kept into what is written (a consumer's clock matched: live.SinkMatch.convert)."""
    agent.require_i2s()
    watch = watch or Watch()
    watch.levels = watch.levels or audio.Levels(out.bus if keep is not None else bus)
    rule = StopRule(until, bus)
    frames = rule.limit if rule.limit is not None and not until.wait_for_sound else None  # the board stops, exactly
    p = config.carry_out(agent, lambda f: plan.record(f, opts, bus, frames), config.ask(agent, opts))
    watch.link_rate = p.link_rate
    if on_ready:
        on_ready(p.cfg)
    return stream_record(agent, port, out, bus, p.cfg, rule, stop=stop or threading.Event(), watch=watch, keep=keep,
                         after=after)


def stream_record(agent: Agent, port: str, out: audio.Output, bus: BusFormat, cfg: dict, rule: StopRule, *,
                  stop: threading.Event, watch: Watch, keep: Callable[[np.ndarray], np.ndarray] | None,
                  after: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """Receive the stream `cfg` into `out`, as `rule` keeps it; the summary `--json` prints."""
    # DATA frames are gathered and handled ~50 ms at a time: numpy's fixed cost per call, not
    # the samples, was most of the host's work per 4 kB frame
    batch = bytearray()
    batch_bytes = max(bus.frame_bytes, bus.bytes_per_second // 20 // bus.frame_bytes * bus.frame_bytes)

    def on_data(data: bytes) -> None:
        if watch.first_audio is None:
            watch.first_audio = time.monotonic()
        batch.extend(data)
        if len(batch) >= batch_bytes:
            flush()

    def flush() -> None:
        if not batch:
            return
        if rule.done:
            batch.clear()
            return
        samples = audio.wire_to_array(bytes(batch), bus)
        batch.clear()
        samples = rule.take(samples if keep is None else keep(samples))
        if not len(samples):
            return
        raw = np.ascontiguousarray(samples).tobytes()
        out.write(raw if after is None else after(samples))
        watch.levels.feed(raw)
        watch.frames = rule.kept

    class Either:  # stop when a signal arrives, a stop condition is met, or the pipe's reader went away
        def is_set(self) -> bool:
            return stop.is_set() or rule.done or getattr(out, "reader_gone", False)

    error: LinkError | audio.AudioError | None = None
    s: dict = {}

    def summary(report: dict | None) -> dict:
        lv = watch.levels.summary()
        counts = board_counts(report) if report is not None else {}
        pipe = getattr(out, "pipe", None)  # a sink without a reader (in memory) has none
        if pipe is not None and report is not None:  # a reader slower than the stream: overruns of our own
            counts["overruns"] += pipe.overruns
            counts["lost_frames"] += pipe.lost_frames
        return {
            # what the file holds (all that was kept, or what fit on a disk that filled)
            "action": "recorded", "file": out.path, "settings": settings(port, agent, cfg, "rx"), "frames": out.frames,
            "seconds": out.frames / bus.rate, "rate": bus.rate, "bits": bus.bits,
            "channels": out.bus.channels if keep is not None else bus.channels,
            "subtype": out.subtype, "format": out.format, **counts,
            "output_overruns": pipe.overruns if pipe is not None else None,
            "output_lost_frames": pipe.lost_frames if pipe is not None else None,
            "reader_closed": getattr(out, "reader_gone", False),
            "discarded_frames": rule.discarded, **levels(lv), "clipped": lv.get("clipped", 0),
            "link_rate": watch.link_rate, "link_probe": probe_kind(agent),
            "compression": compression(report, bus) if report is not None else None,
            "start_latency": (watch.first_audio - watch.started) if watch.first_audio else None,
            "interrupted": stop.is_set(), "board": report,
        }

    try:
        s = agent.record(cfg, on_data, stop=Either())
    except (LinkError, audio.AudioError) as e:
        error = e
    finally:
        try:
            flush()  # every sample received is kept, however the stream ended
            out.sync()
        except audio.AudioError as e:  # the disk filled while the last samples were written
            error = e
    if error is not None:
        error.partial = summary(None)  # what was recorded before it failed (--json prints it)
        raise error
    xruns_drop_probe(agent, s)
    return summary(s)
