"""`i2s test` as a library call: play a test signal on one I2S bus while recording another
(the board's full-duplex "loop" stream), measure the recording (analysis.py), take the board's
own buffering out of the latency, and judge the measures against limits. docs/test.md."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, replace

import numpy as np

from i2scli import audio, targets
from i2scli.audio import wirecode
from i2scli.errors import worded
from i2scli.link import Agent, BoardError
from i2scli.loopback import analysis, format_choice
from i2scli.session import BusOptions, _board_counts, _load_coder, _preset, _why_not_code, stream_sizes
from i2scli.targets import boards
from i2scli.targets.boards import Pins

#: Two-bus presets (i2scli/targets/: each target's LOOP): (TX pins, RX pins). The RX bus of
#: each is wired to the TX bus's SD by the rig.
LOOP_PRESETS: dict[str, tuple[Pins, Pins]] = {t.NAME: t.LOOP for t in targets.all_targets() if t.LOOP}
LOOP_IBUF = 16384  # the loop's ring without --ibuf: one for both buses


@dataclass
class Signal:
    kind: str = "sine"
    freq: float = 997.0
    level: float = -6.0
    seconds: float = 1.2


PIN_KEYS = ("id", "sck", "ws", "sd")


def _pins(preset: Pins | None, id, sck, ws, sd, mck) -> Pins:
    given = {k: v for k, v in dict(id=id, sck=sck, ws=ws, sd=sd, mck=mck).items() if v is not None}
    base = preset or Pins(None, None, None, None)
    return Pins(**{**asdict(base), **given})


def loop_buses(agent: Agent, opts: BusOptions, tx: dict, rx: dict) -> tuple[Pins, Pins]:
    """The TX and RX buses: the board's two-bus preset, overridden by --tx-*/--rx-* (with every
    pin given, no preset is needed: a custom board)."""
    preset = _preset(agent, opts)
    pair = LOOP_PRESETS.get(preset.name) if preset else None
    if preset is not None and pair is None and tx.get("id") is None and rx.get("id") is None:
        raise worded(BoardError, f"{agent.describe()} has one I2S bus ({preset.description}): i2s test plays on "
                     f"one bus while it records another, so it needs a board with two (", ("pin", ("tx", "id")), "/",
                     ("pin", ("rx", "id")), " if this one has more)")
    t = _pins(pair[0] if pair else None, **tx)
    r = _pins(pair[1] if pair else None, **rx)
    missing = [("pin", (d, k)) for d, p in (("tx", t), ("rx", r)) for k in PIN_KEYS if getattr(p, k) is None]
    if missing:
        listed = [part for pin in missing for part in (", ", pin)][1:]
        raise worded(ValueError, "no two-bus preset fits this board: give ", ("board", None),
                     f" ({', '.join(LOOP_PRESETS)}) or also ", *listed)
    if t.id == r.id:
        raise worded(ValueError, f"TX and RX are both I2S({t.id}): a loopback test needs two buses (",
                     ("pin", ("tx", "id")), ", ", ("pin", ("rx", "id")), ")")
    return t, r


def board_frames(sync: dict, rate: int, half: int = 0, circle: int = 0) -> tuple[int, float | None]:
    """The board's own part of a loopback's latency, in frames, and how far off it may be: where
    the first written frame went out on TX, less the TX frame on the wire when RX clocked its
    frame 0 (docs/protocol.md, docs/test.md). `half`: the port's TX DMA half in frames, or with
    `circle` (the frames of all its DMA buffers, esp32) one ESP-IDF DMA buffer: the agent was
    asked to write first an eighth into one; 0 when not known.

    With the port's own clock report (the virtual board) both are exact. On a real board they
    come from ticks_us around the calls: each clock started inside its init call (the ports start
    the DMA at its end). The first write goes into the ring, the port takes it into the DMA half
    that ends next, and it plays after the other half; on esp32 it goes into the oldest free DMA
    buffer, which plays at max(circle, the next buffer boundary). The uncertainty is the longer
    of the two init calls, a frame of rounding, and the step to the next place the audio could
    start if the clock's lateness could have moved the write past a boundary; None when the
    port's DMA is not known (the write's own time is used: it reads low by whatever the DMA
    holds)."""
    off = sync["rx_init_us"] * rate // 1_000_000
    first = sync.get("tx_first_frame")
    if first is not None:
        return first - off, 0.0
    if not half:
        return round(sync["tx_write_us"] * rate / 1_000_000) - off, None

    def out(x: int) -> int:  # where a write at TX frame x goes out
        return max(circle, (x // half + 1) * half) if circle else (x // half + 2) * half

    x = sync["tx_write_us"] * rate // 1_000_000
    window = max(sync.get("tx_init_us", 0), sync.get("rx_open_us", 0)) * rate / 1e6
    first = out(x)
    # the TX clock may have started up to tx_init_us before the reference: the write was that
    # much later in the DMA's time, and perhaps past a boundary
    late = out(int(x + sync.get("tx_init_us", 0) * rate / 1e6)) - first
    return first - off, round(window + 1 + late, 2)


def tx_dma(agent: Agent, bus: audio.BusFormat, ibuf: int) -> tuple[int, int]:
    """The TX DMA of the agent's port, for board_frames: (frames a half, 0) where the DMA takes a
    ring in halves, (frames a buffer, frames of all buffers) on ESP-IDF's DMA buffers (esp32),
    (0, 0) where not known."""
    hello = agent.hello or agent.identity
    buf, circle = boards.tx_dma_buffers(hello, bus.frame_bytes, ibuf)
    return (buf, circle) if buf else (boards.tx_dma_half(hello, bus.bits), 0)


def _to_bytes(samples: np.ndarray, bits: int) -> bytes:
    return samples.astype("<i2" if bits == 16 else "<i4").tobytes()


def payload_for(agent: Agent, opts: BusOptions):
    """The DATA payload a loop stream of a format gets (both directions use the TX one)."""
    return lambda bus: stream_sizes(agent, opts, "tx", bus, _preset(agent, opts))["payload"]


def choose_format(agent: Agent, opts: BusOptions, given: tuple[int | None, int | None, int | None],
                  sig: Signal, tx: dict, rx: dict) -> format_choice.Choice:
    """The test's format (format_choice.choose), for a sine kept under Nyquist; the buses are checked
    first (a one-bus board is refused before the link is measured)."""
    agent.require_i2s()
    loop_buses(agent, opts, tx, rx)
    sizes = payload_for(agent, opts)
    ratios: dict = {}

    def ratio_for(bus: audio.BusFormat) -> float:  # what the test signal codes at, in this stream's frames
        if bus not in ratios:
            samples, _ = analysis.test_signal(sig.kind, rate=bus.rate, bits=bus.bits, channels=bus.channels,
                                              freq=sig.freq, dbfs=sig.level, seconds=sig.seconds)
            ratios[bus] = wirecode.estimate_ratio(_to_bytes(samples, bus.bits), bus.bits, bus.channels, sizes(bus))
        return ratios[bus]

    can_code = _why_not_code(agent, opts) is None
    return format_choice.choose(agent, sizes, given, probe=opts.probe, fresh=opts.fresh_probe,
                          min_rate=2 * sig.freq if sig.kind == "sine" else 0.0,
                          ratio_for=ratio_for if can_code else None)


def run(agent: Agent, port: str, bus: audio.BusFormat, opts: BusOptions, tx: dict, rx: dict, sig: Signal,
        limits: analysis.Limits, stop: threading.Event | None = None, on_ready=None,
        choice: format_choice.Choice | None = None) -> dict:
    """Play the test signal on TX, record RX at once, measure and judge. The result is JSON-able
    but for `_recording` (what was played and recorded, a plot.Recording: pop it first);
    `passed` says whether every check passed. `choice`: how `bus` was picked (choose_format;
    None: check it against the link here)."""
    agent.require_i2s()
    if choice is None:
        choice = format_choice.choose(agent, payload_for(agent, opts), (bus.rate, bus.bits, bus.channels),
                                probe=opts.probe, fresh=opts.fresh_probe)
    t, r = loop_buses(agent, opts, tx, rx)
    samples, info = analysis.test_signal(sig.kind, rate=bus.rate, bits=bus.bits, channels=bus.channels,
                                         freq=sig.freq, dbfs=sig.level, seconds=sig.seconds)
    # the loop keeps its fixed ring (both buses at once; docs/test.md reads its glitches against it)
    base = stream_sizes(agent, replace(opts, ibuf=opts.ibuf or LOOP_IBUF), "tx", bus, _preset(agent, opts))
    ring = base["ibuf"] // bus.frame_bytes
    extra = ring + bus.rate // 5  # the board's buffering and 200 ms of path, recorded past the signal
    frames = len(samples) + extra
    played = _to_bytes(samples, bus.bits) + bytes((extra + ring) * bus.frame_bytes)  # TX outlasts RX
    cfg = {k: base[k] for k in ("bits", "format", "rate", "ibuf", "payload", "timeout_ms")}
    cfg.update(frames=frames, tx=asdict(t), rx=asdict(r))
    half, circle = tx_dma(agent, bus, cfg["ibuf"])
    if half:
        cfg["tx_half"] = half  # the agent's first write lands an eighth into a DMA half (esp32: buffer)
    if choice.ratio is not None:  # coded both ways: the board needs both coder parts
        why = _load_coder(agent, "up", {"mode": "loop"}) or _load_coder(agent, "down", {"mode": "loop"})
        if why is not None:
            raise worded(BoardError, f"{bus.describe()} needs wire coding on this link, but {why}: give a lower ",
                         ("format_part", None))
        cfg["code"] = 1
    if on_ready:
        on_ready(cfg, t, r)
    got = bytearray()
    try:
        summary = agent.loop(cfg, played, got.extend, stop)
    except BoardError as e:
        raise BoardError(f"{agent.describe()} cannot run TX on I2S({t.id}) and RX on I2S({r.id}) at once "
                         f"(a loopback test needs two I2S buses): {e}") from None
    dtype = "<i2" if bus.bits == 16 else "<i4"
    n = len(got) // bus.frame_bytes * bus.frame_bytes
    recorded = np.frombuffer(bytes(got[:n]), dtype=dtype).reshape(-1, bus.channels)
    # the buffers a glitch period may point to, in frames: a DATA frame is the loop's block both ways
    buffers = {"DATA payload": cfg["payload"] // bus.frame_bytes, "I2S ring (ibuf)": ring}
    ignore = analysis.IGNORE_START_S if limits.ignore_start is None else limits.ignore_start
    measures = analysis.analyse(samples, recorded, bus.rate, bus.bits, info, ignore_start=ignore, buffers=buffers)
    board, unsure = board_frames(summary["sync"], bus.rate, half, circle)
    for c in measures["channels"]:
        if c.get("latency_samples") is not None:
            total = c["latency_samples"]
            c.update(latency_total_samples=total, latency_board_samples=board, latency_samples=total - board,
                     latency_ms=round(1000 * (total - board) / bus.rate, 4),
                     latency_uncertainty_frames=unsure,
                     latency_uncertainty_ms=None if unsure is None else round(1000 * unsure / bus.rate, 4))
    checks = analysis.check(measures, limits)
    sync = summary["sync"]
    under = max(summary.get("underruns") or 0, 1 if sync.get("tx_underrun_frames") else 0)
    xruns = under + (summary.get("overruns") or 0)
    checks.insert(0, analysis.Check("board.xruns", xruns, 0, xruns == 0,
                                    f"board.xruns: {under} TX underruns, {summary.get('overruns', 0)} "
                                    f"RX overruns on the board"))
    # the board's counters and the host's, added up as play, record and duplex add them: a frame
    # lost either way, or found only by a resync or a sequence gap, is audio lost
    link = _board_counts(summary)
    damaged = link["crc_errors"] + link["resyncs"] + link["seq_gaps"]
    checks.insert(1, analysis.Check("link.errors", damaged, 0, damaged == 0,
                                    f"link.errors: {link['crc_errors']} CRC errors, {link['resyncs']} resyncs, "
                                    f"{link['seq_gaps']} sequence gaps on the link"))
    from i2scli.loopback.plot import Recording

    return {
        "_recording": Recording(samples, recorded, info),  # for --plot and --save-recording; not JSON
        "action": "test", "port": port, "board": agent.describe(), "passed": all(c.passed for c in checks),
        "rate": bus.rate, "bits": bus.bits, "channels": bus.channels, "format": choice.to_dict(),
        "tx": asdict(t), "rx": asdict(r),
        "signal": info.to_dict(), "limits": asdict(limits), "board_latency_frames": board,
        "latency_uncertainty_frames": unsure,
        "latency_uncertainty_ms": None if unsure is None else round(1000 * unsure / bus.rate, 4),
        "played_frames": len(samples), "recorded_frames": len(recorded),
        "measures": measures, "checks": [asdict(c) for c in checks], "board_summary": summary,
    }
