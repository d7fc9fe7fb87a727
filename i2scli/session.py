"""play and record as library calls: file -> convert -> frames -> link -> board, and back.

Each returns a summary dict (what `--json` prints) and raises typed errors that the CLI maps
to exit codes: audio.AudioError (files), link.NoDevice, link.BoardError, link.LinkError.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from i2scli import audio, protocol, ring
from i2scli.audio import fit, wirecode
from i2scli.link import LINK_HEADROOM, Agent, BoardError, LinkError, TooFast
from i2scli.targets import boards
from i2scli.targets.boardinfo import MAX_TX_PAYLOAD, RX_PAYLOAD, board, info  # noqa: F401  (session's API)


@dataclass
class BusOptions:
    """What the user said about the bus; None = decide from the board and the file."""

    board: str | None = None
    id: int | None = None
    sck: object = None
    ws: object = None
    sd: object = None
    mck: object = None
    ibuf: int | None = None  # the I2S ring in bytes, as given (--ibuf)
    buffer_time: float | None = None  # or in seconds of the stream (--buffer-time); neither: by time (ring.py)
    stream_seconds: float | None = None  # how long the stream is, when known: its ring is never longer
    io: str = "blocking"
    rate: int | None = None
    bits: int | None = None
    channels: int | None = None
    shift: int = 0
    timeout: float = 3.0
    probe: bool = True
    fresh_probe: bool = False  # measure the link even when a recent probe of this board is remembered
    compress: str = "auto"  # lossless wire coding: auto (when the link is the limit), on, off
    fit: bool = False  # play: make a stream that does not fit fit (fit.py); rate/channels given are kept


@dataclass
class Watch:
    """Live state for the progress display."""

    frames: int = 0
    levels: audio.Levels | None = None
    link_rate: float | None = None
    started: float = field(default_factory=time.monotonic)
    first_audio: float | None = None


def _preset(agent: Agent, opts: BusOptions) -> boards.Board | None:
    if opts.board:
        try:
            return boards.BOARDS[opts.board]
        except KeyError:
            raise ValueError(f"unknown board preset {opts.board!r} (known: {', '.join(boards.BOARDS)})") from None
    return boards.detect(agent.identity or agent.hello)


def bus_config(agent: Agent, opts: BusOptions, mode: str, bus: audio.BusFormat,
               modes: tuple[str, ...] | None = None) -> dict:
    """The START config for the agent: pins from the preset and overrides, sizes that fit."""
    preset = _preset(agent, opts)
    pins = boards.resolve(preset, mode, id=opts.id, sck=opts.sck, ws=opts.ws, sd=opts.sd, mck=opts.mck)
    return {"id": pins.id, "sck": pins.sck, "ws": pins.ws, "sd": pins.sd, "mck": pins.mck,
            **stream_sizes(agent, opts, mode, bus, preset, modes)}


def stream_sizes(agent: Agent, opts: BusOptions, mode: str, bus: audio.BusFormat,
                 preset: boards.Board | None, modes: tuple[str, ...] | None = None) -> dict:
    """The START config but the pins: format, ring, payload and timeout that fit the board.
    `modes`: the directions the ring serves (duplex: both), else `mode`'s."""
    payload = _payload(agent, mode, bus)
    if payload <= 0:
        raise ValueError(f"the board's input buffer ({agent.hello.get('inbuf')} bytes) is too small for "
                         f"{bus.describe()} frames")
    hello = agent.hello or agent.identity
    ibuf, why = ring.choose(bus, hello.get("platform", ""), modes or (mode,),
                            ibuf=opts.ibuf or (preset.ibuf if preset else None), buffer_time=opts.buffer_time,
                            stall=(agent.rates or {}).get("stall"), mem_free=hello.get("mem_free"),
                            stream_seconds=opts.stream_seconds)
    return {"bits": bus.bits, "format": "stereo" if bus.channels == 2 else "mono", "rate": bus.rate,
            "ibuf": ibuf, "payload": payload, "io": opts.io, "shift": opts.shift or None,
            "timeout_ms": int(opts.timeout * 1000), "_ring": why}


def _payload(agent: Agent, mode: str, bus: audio.BusFormat) -> int:
    """Audio bytes per DATA frame of a stream in `mode` (tx: to the board)."""
    fb = bus.frame_bytes
    if mode == "tx":
        return protocol.tx_payload(agent.identity.get("inbuf", 256), fb)
    return RX_PAYLOAD // fb * fb


def describe_config(cfg: dict, agent: Agent, mode: str = "tx") -> str:
    pins = f"I2S({cfg['id']}) sck={cfg['sck']} ws={cfg['ws']} sd={cfg['sd']}"
    if cfg.get("mck") is not None:
        pins += f" mck={cfg['mck']}"
    bus = audio.BusFormat(cfg["rate"], cfg["bits"], 2 if cfg["format"] == "stereo" else 1)
    return f"{agent.describe()}: {bus.describe()}, {pins}, {describe_ring(cfg, agent, mode)}, {cfg['io']} io"


RING_WHY = {"ibuf": "--ibuf", "buffer-time": "--buffer-time", "time": "default", "ram": "the board's RAM",
            "stream": "the whole stream"}


def buffer_time(cfg: dict, agent: Agent, mode: str = "tx") -> float:
    """Seconds of the stream the ring (cfg's ibuf) holds on this board, in `mode`'s direction."""
    bus = audio.BusFormat(cfg["rate"], cfg["bits"], 2 if cfg["format"] == "stereo" else 1)
    return ring.ring_seconds(cfg["ibuf"], bus, (agent.hello or agent.identity).get("platform", ""), mode)


def describe_ring(cfg: dict, agent: Agent, mode: str = "tx") -> str:
    """`ibuf 9728 (50 ms: the whole stream)`: the ring, the audio it holds, and what chose it."""
    why = RING_WHY.get(cfg.get("_ring", ""), "")
    return f"ibuf {cfg['ibuf']} ({buffer_time(cfg, agent, mode) * 1000:.0f} ms{': ' + why if why else ''})"


CODE_WHEN = 0.5  # auto: code the stream when it needs more than this share of the link
PEEK_SECONDS = 2.0  # of a file, to estimate how well it compresses before starting
STREAM_PEEK_SECONDS = 0.25  # of a stream (a pipe): a live source is not held back for longer
# what recording can count on, not knowing the sound: the zero bits of 16- or 24-bit audio in 32-bit slots
RX_RATIO_FLOOR = {16: 1.0, 32: 1.3}


def _why_not_code(agent: Agent, opts: BusOptions) -> str | None:
    if opts.compress == "off":
        return "--compress off"
    if not (agent.hello or agent.identity).get("native"):
        return "the board's firmware runs no viper code, which the decoder is"
    return None


def _load_coder(agent: Agent, direction: str, mode: dict | None = None) -> str | None:
    """The coder on the board (loaded now if need be), the agent started again with the
    modules of the stream `mode` (START-like: mode, io); why not, when it cannot be."""
    if agent.load_coder("Decoder" if direction == "up" else "Encoder", mode):
        return None
    return f"the board could not load the decoder ({agent.launcher.coder_error})"


def _stream_mode(cfg: dict, direction: str) -> dict:
    """The START-like mode of a stream `cfg` (duplex and loop say theirs; else play or record)."""
    return {"mode": cfg.get("mode") or ("tx" if direction == "up" else "rx"), "io": cfg.get("io", "blocking")}


Advice = Callable[[float, bool], str]  # (link rate, can code) -> what would fit, for a refusal


def _fit(agent: Agent, opts: BusOptions, bus: audio.BusFormat, cfg: dict, direction: str,
         peek: Callable[[], float] | None = None, advise: Advice | None = None) -> float | None:
    """Decide the wire coding (cfg["code"]) and refuse a stream the link cannot carry even
    coded, saying what would fit (`advise`); the link rate it has (None: not measured)."""
    why_not = _why_not_code(agent, opts)
    if opts.compress == "on" and why_not:
        raise BoardError(f"cannot compress this stream: {why_not}")
    if not opts.probe:
        if opts.compress == "on":
            why_not = _load_coder(agent, direction, _stream_mode(cfg, direction))
            if why_not is not None:
                raise BoardError(f"cannot compress this stream: {why_not}")
            cfg["code"] = 1
        return None
    wire = protocol.stream_rate(bus.rate, bus.bits, bus.channels, cfg["payload"])
    have = agent.link_rates(opts.fresh_probe)[direction]

    def advice(coded: bool) -> Callable[[], str] | None:
        return (lambda: advise(have, coded)) if advise is not None else None

    if why_not is None and (opts.compress == "on" or wire > have * CODE_WHEN):
        ratio = peek() if peek is not None else RX_RATIO_FLOOR.get(bus.bits, 1.0)
        need = wire / max(ratio, 1e-9)
        if need <= have * LINK_HEADROOM or opts.compress == "on":
            why_not = _load_coder(agent, direction, _stream_mode(cfg, direction))
            if why_not is not None:
                if opts.compress == "on":
                    raise BoardError(f"cannot compress this stream: {why_not}")
                agent.check_fit(wire, direction, bus.describe() + f" (uncompressed: {why_not})",
                                advice=advice(False))
                return have
            cfg["code"] = 1
            cfg["code_ratio_estimate"] = round(ratio, 3)
            return have
        if wire > have * LINK_HEADROOM:
            where = "to" if direction == "up" else "from"
            help_ = ["compression cannot help: this content does not compress"] if ratio < 1.1 else []
            help_.append(advise(have, True) if advise is not None else GENERIC_ADVICE)
            measured = "its first seconds compress" if peek is not None else "recordings can count on"
            raise TooFast(f"{bus.describe()} needs {wire / 1000:.1f} kB/s {where} the board, {need / 1000:.1f} kB/s "
                          f"compressed ({measured} {ratio:.2f}:1), but the link to {agent.describe()} carries "
                          f"{have / 1000:.1f} kB/s (measured): {'; '.join(help_)}")
    try:
        agent.check_fit(wire, direction, bus.describe(), advice=advice(False))
    except TooFast as e:
        if why_not is not None and opts.compress != "off":
            raise TooFast(f"{e}; it cannot be sent compressed: {why_not}") from None
        raise
    return have


# -- what would fit, and --fit -------------------------------------------------------------------
GENERIC_ADVICE = "use a lower rate (-r), fewer bits (-b 16) or one channel (-c 1)"
FIT_MAX_RATIO = 12.0  # no coding (near-lossless of 16-bit audio in 32-bit slots included) does better


def _fmt_list(items: list[str]) -> str:
    if len(items) <= 2:
        return " or ".join(items)
    return ", ".join(items[:-1]) + ", or " + items[-1]


def _what_fits(agent: Agent, bus: audio.BusFormat, mode: str, budget: float, coded: bool,
               ratio_of: Callable[[audio.BusFormat, int], float]) -> list[str]:
    """The options that would make the stream fit, each the least change of its kind: the
    highest standard rate below this one (-r), 16 bits for a 32-bit stream (-b 16), one channel
    for a stereo one (-c 1); when none alone does, the highest rate with all of them. Never an
    option already in effect. `ratio_of(bus, payload)` is the coder's ratio on that stream."""
    def fits(dst: audio.BusFormat) -> str | None:
        payload = _payload(agent, mode, dst)
        if payload <= 0:
            return None
        wire = protocol.stream_rate(dst.rate, dst.bits, dst.channels, payload)
        if wire <= budget:
            return ""
        if not coded or wire / FIT_MAX_RATIO > budget:
            return None
        ratio = ratio_of(dst, payload)
        return f" (coded about {ratio:.1f}:1)" if wire / ratio <= budget else None

    out = []
    for r in (r for r in fit.STANDARD_RATES if r < bus.rate):
        how = fits(audio.BusFormat(r, bus.bits, bus.channels))
        if how is not None:
            out.append(f"-r {r}{how}")
            break
    if bus.bits == 32 and (how := fits(audio.BusFormat(bus.rate, 16, bus.channels))) is not None:
        out.append(f"-b 16{how}")
    if bus.channels == 2 and (how := fits(audio.BusFormat(bus.rate, bus.bits, 1))) is not None:
        out.append(f"-c 1{how}")
    if not out and (bus.bits == 32 or bus.channels == 2):
        for r in (r for r in (bus.rate, *fit.STANDARD_RATES) if r <= bus.rate):
            how = fits(audio.BusFormat(r, 16, 1))
            if how is not None:
                opts = ([f"-r {r}"] if r != bus.rate else []) + (["-b 16"] if bus.bits == 32 else []) + \
                    (["-c 1"] if bus.channels == 2 else [])
                out.append(" ".join(opts) + how)
                break
    return out


def _advice_text(options: list[str], fit_text: str | None = None) -> str:
    items = options + ([fit_text] if fit_text else [])
    if not items:
        return "nothing fits this link, not even at 8000 Hz"
    return "fits: " + _fmt_list(items)


def _head_ratio(src: audio.BusFormat, head: bytes) -> Callable[[audio.BusFormat, int], float]:
    """The coder's ratio on the stream's first seconds as another stream would carry them (as
    -r, -b 16 and -c 1 play them: resampled, the top 16 bits, the left channel), counting what
    each coded frame costs on the wire, so that what is proposed really fits."""
    def ratio_of(dst: audio.BusFormat, payload: int) -> float:
        e = fit.estimate(src, dst, head, payload, near_lossless=False, coded=True, mix=False)
        wire = protocol.stream_rate(dst.rate, dst.bits, dst.channels, payload)
        return min(e.ratio or 1.0, wire / max(e.need, 1e-9))
    return ratio_of


def _plan(agent: Agent, opts: BusOptions, bus: audio.BusFormat, head: bytes, budget: float,
          coded: bool) -> fit.Estimate | None:
    """The least change that makes the stream fit `budget` bytes/s (fit.py), tried on its
    first seconds: near-lossless as it is; else, for each channel count (this one, then one
    unless -c was given), the highest standard rate (unless -r was given) that fits, lossless
    or near-lossless, and of those two the one with the higher SNR. None: nothing fits."""
    if coded:
        e = fit.estimate(bus, bus, head, _payload(agent, "tx", bus), near_lossless=True, coded=True)
        if e.need <= budget:
            return e
    found = []
    chans = [bus.channels] + ([1] if bus.channels == 2 and opts.channels is None else [])
    for ch in chans:
        rates = [bus.rate] if ch != bus.channels else []
        if opts.rate is None:
            rates += [r for r in fit.STANDARD_RATES if r < bus.rate]
        for r in rates:
            dst = audio.BusFormat(r, bus.bits, ch)
            payload = _payload(agent, "tx", dst)
            if payload <= 0:
                continue
            raw = protocol.stream_rate(r, bus.bits, ch, payload)
            if raw / (FIT_MAX_RATIO if coded else 1.0) > budget:
                continue
            e = None
            for near in ((False, True) if coded else (False,)):
                e = fit.estimate(bus, dst, head, payload, near_lossless=near, coded=coded)
                if e.need <= budget:
                    break
            if e is not None and e.need <= budget:
                found.append(e)
                break
    return max(found, key=lambda e: math.inf if e.snr_db is None else e.snr_db, default=None)


def _cannot_fit(agent: Agent, opts: BusOptions, bus: audio.BusFormat, have: float, coded: bool) -> TooFast:
    kept = [f"-r {bus.rate}"] if opts.rate is not None else []
    kept += [f"-c {bus.channels}"] if opts.channels is not None and bus.channels == 2 else []
    lowest = f"{min(fit.STANDARD_RATES)} Hz" + (" mono" if opts.channels is None or bus.channels == 1 else "")
    how = (" near-lossless" if coded else "") + ("" if coded else " (this stream cannot be coded)")
    why = f" keeping the {' and '.join(kept)} you gave" if kept else f" not even at {lowest}{how}"
    return TooFast(f"--fit cannot make {bus.describe()} fit the link to {agent.describe()}, which carries "
                   f"{have / 1000:.1f} kB/s (measured):{why}")


def _fit_line(e: fit.Estimate | None, src: audio.BusFormat, have: float) -> str:
    """The one line --fit says about what it does."""
    if e is None:
        return f"--fit: {src.describe()} fits as it is (lossless, bit-exact)"
    bits = e.bits_removed
    parts = [e.method if e.dst == src else f"{e.dst.describe()} ({e.method})"]
    if e.near_lossless:
        parts.append(f"{bits['mean']:.1f} of {e.dst.bits} bits removed on average (at most {bits['max']})")
    parts.append(f"about {e.snr_db:.0f} dB SNR in the first seconds" if e.snr_db is not None else "bit-exact")
    wire = f"coded about {e.ratio:.1f}:1, " if e.coded and e.ratio else ""
    return f"--fit: {', '.join(parts)}; {wire}{e.need / 1000:.1f} kB/s of the link's {have / 1000:.1f} kB/s"


def _lossless_fit(bus: audio.BusFormat) -> dict:
    return {"method": "lossless", "bits_removed": {"mean": 0.0, "max": 0}, "rate": bus.rate,
            "channels": bus.channels, "snr_db": None}


def _fitted(fitter: fit.Fitter, source: Iterator[bytes]) -> Iterator[bytes]:
    for block in source:
        yield fitter.feed(block) or b""  # b"": nothing yet (the link is tended meanwhile)
    tail = fitter.finish()
    if tail:
        yield tail


def _know_link(agent: Agent, opts: BusOptions) -> None:
    """The link probe (or what is remembered of it) before the ring is sized: its stalls size
    the ring (ring.py). A stream that gives its ring, or skips the probe, does not ask."""
    if opts.probe and not opts.ibuf and not opts.buffer_time:
        agent.link_rates(opts.fresh_probe)


def _settings(port: str, agent: Agent, cfg: dict, mode: str = "tx") -> dict:
    return {"port": port, "board": agent.describe(), "agent": agent.identity.get("agent"),
            "agent_source": agent.identity.get("source"),
            **{k: cfg[k] for k in ("id", "sck", "ws", "sd", "mck", "bits", "format", "rate", "ibuf", "io")},
            "buffer_time": round(buffer_time(cfg, agent, mode), 6), "ring_from": cfg.get("_ring")}


def _board_counts(s: dict) -> dict:
    # the agent's estimate from its clock; where the port counts xruns itself (the virtual
    # board), the larger of the two
    port = s.get("port_xruns") or {}
    return {
        "underruns": max(s.get("underruns", 0), port.get("underruns", 0)),
        "overruns": max(s.get("overruns", 0), port.get("overruns", 0)),
        "lost_frames": max(s.get("lost_frames", 0), port.get("underrun_frames", 0) + port.get("overrun_frames", 0)),
        "crc_errors": s.get("crc_errors", 0) + s.get("host_crc_errors", 0),
        "resyncs": s.get("resyncs", 0) + s.get("host_resyncs", 0),
        "seq_gaps": s.get("seq_gaps", 0) + s.get("host_seq_gaps", 0),
        "heap_alloc": s.get("heap_alloc"), "board_reason": s.get("reason"),
    }


def _probe_kind(agent: Agent) -> str | None:
    """How the link rate was known: 'measured' now, 'remembered' from a recent run, or None."""
    if agent.rates is None:
        return None
    return "remembered" if agent.rates.get("cached") else "measured"


def _compression(s: dict, bus: audio.BusFormat) -> dict | None:
    """What the wire coder did: the host's counts, and the board's coder time per audio second."""
    host, on_board = s.get("host_code"), s.get("code")
    if host is None:
        return None
    out = {k: host[k] for k in ("ratio", "frames_compressed", "frames_raw")}
    seconds = s.get("frames", 0) / bus.rate
    out["board_us_per_audio_s"] = round(on_board["us"] / seconds) if on_board and seconds else None
    return out


def _xruns_drop_probe(agent: Agent, s: dict) -> None:
    """A stream that under- or overran says the remembered link rate may be wrong."""
    if s.get("underruns") or s.get("overruns"):
        agent.forget_rates()


def _levels(lv: dict) -> dict:
    chans = lv.get("channels", [])
    return {"peak_dbfs": [c["peak_dbfs"] for c in chans], "rms_dbfs": [c["rms_dbfs"] for c in chans]}


def play(agent: Agent, port: str, source: Iterator[bytes], bus: audio.BusFormat, opts: BusOptions, *,
         stop: threading.Event | None = None, watch: Watch | None = None, stats: audio.ConvertStats | None = None,
         on_ready: Callable[[dict], None] | None = None, on_fit: Callable[[str], None] | None = None,
         peek_seconds: float = PEEK_SECONDS) -> dict:
    """Stream wire-format blocks to I2S TX. Stops early (gracefully) when stop is set. An empty
    block means that the source has nothing yet (a pipe): the link is tended meanwhile.

    A stream the link cannot carry is refused (TooFast) saying what would fit; with opts.fit it
    is made to fit (fit.py) and `on_fit` hears one line saying how."""
    agent.require_i2s()
    _know_link(agent, opts)
    cfg = bus_config(agent, opts, "tx", bus)
    watch = watch or Watch()
    watch.levels = watch.levels or audio.Levels(bus)
    source = iter(source)
    head: list[bytes] = []  # what the compression estimate read, played first
    peeked = False

    def head_bytes() -> bytes:
        nonlocal peeked
        if not peeked:
            peeked = True
            want, got = int(peek_seconds * bus.bytes_per_second), 0
            for block in source:
                head.append(block)
                got += len(block)
                if got >= want:
                    break
        return b"".join(head)

    def peek() -> float:
        data = head_bytes()
        return wirecode.estimate_ratio(data, bus.bits, bus.channels, cfg["payload"]) if data else 1.0

    def advise(have: float, coded: bool) -> str:
        data = head_bytes()
        budget = have * LINK_HEADROOM
        options = _what_fits(agent, bus, "tx", budget, coded, _head_ratio(bus, data))
        e = _plan(agent, opts, bus, data, budget, coded) if data else None
        return _advice_text(options, f"--fit ({e.describe(bus)})" if e else None)

    fitter = None
    sent_bus = bus
    try:
        watch.link_rate = _fit(agent, opts, bus, cfg, "up", peek, None if opts.fit else advise)
        if opts.fit and on_fit:
            on_fit(_fit_line(None, bus, watch.link_rate) if watch.link_rate is not None else
                   "--fit: the link was not measured (--no-probe): sent as it is")
    except TooFast:
        if not opts.fit:
            raise
        have = agent.link_rates()["up"]
        coded = _why_not_code(agent, opts) is None
        e = _plan(agent, opts, bus, head_bytes(), have * LINK_HEADROOM, coded)
        if e is not None and e.coded and _load_coder(agent, "up", _stream_mode(cfg, "up")) is not None:
            coded = False  # the board could not take the decoder after all: raw, then
            e = _plan(agent, opts, bus, head_bytes(), have * LINK_HEADROOM, coded)
        if e is None:
            raise _cannot_fit(agent, opts, bus, have, coded) from None
        sent_bus = e.dst
        cfg = bus_config(agent, opts, "tx", sent_bus)
        if e.coded:
            cfg["code"] = 1
            cfg["code_ratio_estimate"] = round(e.ratio, 3)
        fitter = fit.Fitter(bus, sent_bus, cfg["payload"] // sent_bus.frame_bytes if e.near_lossless else None)
        watch.link_rate = have
        watch.levels = audio.Levels(sent_bus)
        if on_fit:
            on_fit(_fit_line(e, bus, have))
    source = itertools.chain(head, source)
    if fitter is not None:
        source = _fitted(fitter, source)
    if on_ready:
        on_ready(cfg)
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
        fitted = fitter.summary() if fitter else _lossless_fit(bus) if opts.fit else None
        return {
            "action": "played", "settings": _settings(port, agent, cfg), "frames": frames,
            "seconds": frames / sent_bus.rate, "rate": sent_bus.rate, "bits": sent_bus.bits,
            "channels": sent_bus.channels,
            **(_board_counts(report) if report is not None else {}), **_levels(watch.levels.summary()),
            "clipped": clipped, "nonfinite": stats.nonfinite if stats else 0,
            "link_rate": watch.link_rate, "link_probe": _probe_kind(agent),
            "compression": _compression(report, sent_bus) if report is not None else None, "fit": fitted,
            "start_latency": (watch.first_audio - watch.started) if watch.first_audio else None,
            "interrupted": interrupted if report is not None else bool(stop is not None and stop.is_set()),
            "board": report,
        }

    try:
        s = agent.play(cfg, blocks(), progress=progress)
    except (LinkError, audio.AudioError) as e:
        e.partial = summary(None)  # what was sent before it failed (--json prints it)
        raise
    _xruns_drop_probe(agent, s)
    return summary(s)


@dataclass
class RecordStop:
    """When a recording ends, besides signals: a frame count, silence, a safety net."""

    frames: int | None = None  # exact number of frames to keep
    stop_on_silence: float | None = None  # seconds of silence that end it
    threshold_dbfs: float = -50.0
    wait_for_sound: bool = False
    max_frames: int | None = None


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


def record(agent: Agent, port: str, out: audio.Output, bus: audio.BusFormat, opts: BusOptions, until: RecordStop,
           *, stop: threading.Event | None = None, watch: Watch | None = None,
           on_ready: Callable[[dict], None] | None = None,
           keep: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """Stream I2S RX into `out` until `until` or `stop`. Every sample received is written,
    also when the link fails (the error is raised after the file has what arrived).
    `keep` turns each block of bus samples (frames, channels) into what the file keeps (in
    `out.bus`'s format: e.g. one slot of a stereo bus, `record --slot`)."""
    agent.require_i2s()
    _know_link(agent, opts)
    cfg = bus_config(agent, opts, "rx", bus)
    watch = watch or Watch()
    watch.levels = watch.levels or audio.Levels(out.bus if keep is not None else bus)
    def advise(have: float, coded: bool) -> str:
        return _advice_text(_what_fits(agent, bus, "rx", have * LINK_HEADROOM, coded,
                                       lambda dst, payload: RX_RATIO_FLOOR.get(dst.bits, 1.0)))

    watch.link_rate = _fit(agent, opts, bus, cfg, "down", advise=advise)
    stop = stop or threading.Event()
    rule = StopRule(until, bus)
    if rule.limit is not None and not until.wait_for_sound:
        cfg["frames"] = rule.limit  # the board stops by itself, exactly
    if on_ready:
        on_ready(cfg)

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
        out.write(raw)
        watch.levels.feed(raw)
        watch.frames = rule.kept

    class Either:  # stop when a signal arrives, a stop condition is met, or the pipe's reader went away
        def is_set(self) -> bool:
            return stop.is_set() or rule.done or getattr(out, "reader_gone", False)

    error: LinkError | audio.AudioError | None = None
    s: dict = {}

    def summary(report: dict | None) -> dict:
        lv = watch.levels.summary()
        counts = _board_counts(report) if report is not None else {}
        pipe = getattr(out, "pipe", None)  # a sink without a reader (in memory) has none
        if pipe is not None and report is not None:  # a reader slower than the stream: overruns of our own
            counts["overruns"] += pipe.overruns
            counts["lost_frames"] += pipe.lost_frames
        return {
            # what the file holds (all that was kept, or what fit on a disk that filled)
            "action": "recorded", "file": out.path, "settings": _settings(port, agent, cfg, "rx"), "frames": out.frames,
            "seconds": out.frames / bus.rate, "rate": bus.rate, "bits": bus.bits,
            "channels": out.bus.channels if keep is not None else bus.channels,
            "subtype": out.subtype, "format": out.format, **counts,
            "output_overruns": pipe.overruns if pipe is not None else None,
            "output_lost_frames": pipe.lost_frames if pipe is not None else None,
            "reader_closed": getattr(out, "reader_gone", False),
            "discarded_frames": rule.discarded, **_levels(lv), "clipped": lv.get("clipped", 0),
            "link_rate": watch.link_rate, "link_probe": _probe_kind(agent),
            "compression": _compression(report, bus) if report is not None else None,
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
    _xruns_drop_probe(agent, s)
    return summary(s)


@dataclass
class DuplexOptions:
    order: str = "record-play"
    switch_delay: float = 0.001
    dir_pin: object = None
    dir_rx_level: int = 0
    sd_tx: object = None
    sd_rx: object = None
    lead_in: float = 0.0
    rx_discard: float = 0.0
    max_clock_gap: float = 0.010
    prefill: int | None = None


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


def duplex_config(agent: Agent, opts: BusOptions, dx: DuplexOptions, bus: audio.BusFormat, rx_frames: int) -> dict:
    preset = _preset(agent, opts)
    tx = boards.resolve(preset, "tx", id=opts.id, sck=opts.sck, ws=opts.ws, sd=dx.sd_tx or opts.sd, mck=opts.mck)
    rx = boards.resolve(preset, "rx", id=opts.id, sck=opts.sck, ws=opts.ws, sd=dx.sd_rx or opts.sd, mck=opts.mck)
    base = bus_config(agent, opts, "tx", bus, ("tx", "rx"))
    dir_pin = dx.dir_pin if dx.dir_pin is not None else (preset.dir_pin if preset else None)
    cfg = {k: base[k] for k in ("bits", "format", "rate", "ibuf", "payload", "io", "timeout_ms", "_ring")}
    cfg.update({
        "tx": {"id": tx.id, "sck": tx.sck, "ws": tx.ws, "sd": tx.sd, "mck": tx.mck},
        "rx": {"id": rx.id, "sck": rx.sck, "ws": rx.ws, "sd": rx.sd, "mck": rx.mck},
        "dir": dir_pin, "dir_rx_level": dx.dir_rx_level, "order": dx.order,
        "switch_delay_us": int(round(dx.switch_delay * 1e6)),
        "lead_in_frames": int(round(dx.lead_in * bus.rate)),
        "discard_frames": int(round(dx.rx_discard * bus.rate)),
        "rx_frames": rx_frames,
    })
    if dx.prefill:
        cfg["prefill"] = dx.prefill
    return cfg


def duplex_ratio(agent: Agent, bus: audio.BusFormat, head: Callable[[], bytes] | None) -> float:
    """What the play half can count on coded: the coder's ratio on the play file's first
    seconds (`head()`); without a file (echo) the recording's floor."""
    if head is None:
        return RX_RATIO_FLOOR.get(bus.bits, 1.0)
    data = head()
    return wirecode.estimate_ratio(data, bus.bits, bus.channels, _payload(agent, "tx", bus)) if data else 1.0


def fit_duplex(agent: Agent, opts: BusOptions, bus: audio.BusFormat,
               head: Callable[[], bytes] | None = None) -> fit.Estimate | None:
    """Before a duplex exchange (both halves share `bus`): None when it fits as it is or coded
    (duplex() then decides the coding), or the link is not measured; with opts.fit, the rate
    and channels that make it fit, tried on the play file's first seconds (`head()`); else
    TooFast saying what would fit."""
    if not opts.probe:
        return None
    rates = agent.link_rates(opts.fresh_probe)
    have = min(rates["up"], rates["down"])
    budget = have * LINK_HEADROOM
    wire = protocol.stream_rate(bus.rate, bus.bits, bus.channels, _payload(agent, "tx", bus))
    if wire <= budget:
        return None
    if _why_not_code(agent, opts) is None:
        up, down = wire / duplex_ratio(agent, bus, head), wire / RX_RATIO_FLOOR.get(bus.bits, 1.0)
        if up <= rates["up"] * LINK_HEADROOM and down <= rates["down"] * LINK_HEADROOM:
            return None
    e = _plan(agent, opts, bus, head(), budget, False) if head is not None else None
    if opts.fit:
        if e is None:
            raise _cannot_fit(agent, opts, bus, have, False)
        return e
    raise TooFast(f"{bus.describe()} needs {wire / 1000:.1f} kB/s each way, but the link to {agent.describe()} "
                  f"carries {rates['up'] / 1000:.1f} kB/s up and {rates['down'] / 1000:.1f} kB/s down (measured; "
                  f"even coded): "
                  + _advice_text(_what_fits(agent, bus, "tx", budget, False, lambda dst, payload: 1.0),
                                 f"--fit ({e.describe(bus)})" if e else None))


def duplex(agent: Agent, port: str, out: audio.Output, tx_source, bus: audio.BusFormat, opts: BusOptions,
           dx: DuplexOptions, until: RecordStop, *, stop: threading.Event | None = None, watch: Watch | None = None,
           echo: EchoSource | None = None, on_ready: Callable[[dict], None] | None = None,
           tx_ratio: float | None = None) -> dict:
    """One record-then-play (or play-then-record) exchange with the switch on the board; coded
    on the wire both ways when a half needs it (`tx_ratio`: what the play half codes at)."""
    from i2scli import timeline as tl

    agent.require_i2s()
    rx_frames = until.frames or 0
    cfg = duplex_config(agent, opts, dx, bus, rx_frames if not until.stop_on_silence else 0)
    watch = watch or Watch()
    watch.levels = watch.levels or audio.Levels(bus)
    def advise(have: float, coded: bool) -> str:
        return _advice_text(_what_fits(agent, bus, "tx", have * LINK_HEADROOM, False, lambda dst, payload: 1.0))

    # each half as play and record decide it; the board codes both halves or neither
    cfg["mode"] = "duplex"  # a coder part loaded for a half comes with duplex's module, not play's
    _fit(agent, opts, bus, cfg, "up", peek=(lambda: tx_ratio) if tx_ratio else None, advise=advise)
    coded = cfg.pop("code", None)
    watch.link_rate = _fit(agent, opts, bus, cfg, "down", advise=advise)
    if coded or cfg.get("code"):
        why = _load_coder(agent, "up", {"mode": "duplex"}) or _load_coder(agent, "down", {"mode": "duplex"})
        if why is not None:
            raise BoardError(f"cannot compress this duplex stream: {why}")
        cfg["code"] = 1
    if on_ready:
        on_ready(cfg)
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
            "settings": {**_settings(port, agent, {**cfg, **cfg["tx"]}), "rx": cfg["rx"], "tx": cfg["tx"],
                         "dir": cfg["dir"], "dir_rx_level": cfg["dir_rx_level"], "order": cfg["order"],
                         "switch_delay_us": cfg["switch_delay_us"], "lead_in_frames": cfg["lead_in_frames"],
                         "discard_frames": cfg["discard_frames"]},
            "frames": rule.kept, "recorded_frames": rule.kept,
            "played_frames": s.get("tx_frames", 0) if report is not None else None,
            "seconds": rule.kept / bus.rate, "rate": bus.rate, "bits": bus.bits, "channels": bus.channels,
            **(_board_counts(s) if report is not None else {}), **_levels(lv), "clipped": lv.get("clipped", 0),
            "clock_gaps_us": gaps, "max_clock_gap_us": int(dx.max_clock_gap * 1e6),
            "gap_exceeded": any(g > dx.max_clock_gap * 1e6 for g in gaps),
            "switches": [[{"step": n, "us": t} for n, t in sw] for sw in steps],
            "timeline": s.get("timeline", []), "link_rate": watch.link_rate, "link_probe": _probe_kind(agent),
            "compression": _compression(s, bus) if report is not None else None,
            "interrupted": bool(stop and stop.is_set()), "board": report,
        }

    try:
        s = agent.duplex(cfg, tx_source, on_rx, switch=switch, stop=stop, on_phase=on_phase)
    except (LinkError, audio.AudioError) as e:
        e.partial = summary(None)  # what was recorded before it failed (--json prints it)
        raise
    finally:
        out.sync()
    _xruns_drop_probe(agent, s)
    return summary(s)
