"""What a stream will be, decided before it starts from what the board and its link said (`Facts`):
pins, sizes and ring, the wire coding, --fit's choice; or a `Refusal` saying why not and what would
fit. Pure: nothing here asks a board (tests/unit/test_plan.py plans without one)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from i2scli import protocol
from i2scli.audio import fit, wirecode
from i2scli.audio.busformat import BusFormat
from i2scli.link import LINK_HEADROOM
from i2scli.session import refusal as rf
from i2scli.session.options import BusOptions, DuplexOptions
from i2scli.session.refusal import Alternative, Refusal
from i2scli.session.sizes import Facts, config, duplex_config, payload

CODE_WHEN = 0.5  # auto: code the stream when it needs more than this share of the link
# what recording can count on, not knowing the sound: the zero bits of 16- or 24-bit audio in 32-bit slots
RX_RATIO_FLOOR = {16: 1.0, 32: 1.3}
FIT_MAX_RATIO = 12.0  # no coding (near-lossless of 16-bit audio in 32-bit slots included) does better

Head = Callable[[], bytes]  # the stream's first seconds at its own format, read when first asked for
RatioOf = Callable[[BusFormat, int], float]  # (bus, payload) -> the coder's ratio on that stream


@dataclass(frozen=True)
class Plan:
    """A stream as it will be sent: `bus` on the wire (--fit may change it from the one asked
    for), `cfg` the agent's START config (pins, sizes, ring, coding), checked against
    `link_rate` (None: not measured). `load`: the coder parts the board must have first, as
    (direction, START-like mode); `fit`: --fit's choice (a fit.Estimate; None: sent as it is)."""

    bus: BusFormat
    cfg: dict
    link_rate: float | None
    load: tuple[tuple[str, dict], ...] = ()
    fit: fit.Estimate | None = None


@dataclass(frozen=True)
class Coding:
    """One direction's wire coding: whether, the ratio counted on, the link rate checked against."""

    code: bool
    have: float | None
    ratio: float | None = None


def why_not_code(who: dict, opts: BusOptions) -> str | None:
    """Why this stream cannot be coded on the wire, whatever the link (None: it can)."""
    if opts.compress == "off":
        return "compression is off"
    if not who.get("native"):
        return "the board's firmware runs no viper code, which the decoder is"
    return None


def needs_link(who: dict, opts: BusOptions) -> bool:
    """Whether planning wants the link's rates: a stream checked against them (not --no-probe),
    unless it is refused before (coding asked for, on a board that cannot code)."""
    return opts.probe and not (opts.compress == "on" and why_not_code(who, opts))


def stream_mode(cfg: dict, direction: str) -> dict:
    """The START-like mode of a stream `cfg` (duplex and loop say theirs; else play or record)."""
    return {"mode": cfg.get("mode") or ("tx" if direction == "up" else "rx"), "io": cfg.get("io", "blocking")}


def _coding(f: Facts, opts: BusOptions, bus: BusFormat, direction: str, size: int,
            peek: Callable[[], float] | None,
            advise: Callable[[float, bool], tuple[tuple[Alternative, ...], fit.Estimate | None]] | None
            ) -> Coding | Refusal:
    """Decide the wire coding of one direction, or refuse a stream the link cannot carry even
    coded. `peek()`: the coder's ratio on the stream (None: what recordings can count on);
    `advise(have, coded)`: what would fit, for a refusal (None: not worked out)."""
    def refusal(kind: str, coded: bool, **kw) -> Refusal:
        alts, est = advise(have, coded) if advise is not None else (None, None)
        return Refusal(kind, bus, f.board, direction, wire, have, alternatives=alts, fit=est, **kw)

    why_not = why_not_code(f.who, opts)
    if opts.compress == "on" and why_not:
        return Refusal(rf.CANNOT_CODE, bus, f.board, why=why_not)
    failed = f.coder_errors.get(direction)
    if f.link is None:
        if opts.compress != "on":
            return Coding(False, None)
        return Refusal(rf.CANNOT_CODE, bus, f.board, why=failed) if failed else Coding(True, None)
    wire = protocol.stream_rate(bus.rate, bus.bits, bus.channels, size)
    have = f.link[direction]
    budget = have * LINK_HEADROOM
    if why_not is None and (opts.compress == "on" or wire > have * CODE_WHEN):
        ratio = peek() if peek is not None else RX_RATIO_FLOOR.get(bus.bits, 1.0)
        need = wire / max(ratio, 1e-9)
        if need <= budget or opts.compress == "on":
            if failed is None:
                return Coding(True, have, ratio)
            if opts.compress == "on":
                return Refusal(rf.CANNOT_CODE, bus, f.board, why=failed)
            if wire > budget:
                return refusal(rf.TOO_FAST, False, uncompressed=failed)
            return Coding(False, have)
        if wire > budget:
            return refusal(rf.CODED_TOO_FAST, True, coded_need=need, ratio=ratio, ratio_measured=peek is not None)
    if wire > budget:
        return refusal(rf.TOO_FAST, False, no_coding=why_not if opts.compress != "off" else None)
    return Coding(False, have)


def _coded(cfg: dict, c: Coding) -> dict:
    if c.code:
        cfg["code"] = 1
        if c.ratio is not None:
            cfg["code_ratio_estimate"] = round(c.ratio, 3)
    return cfg


def _loads(c: Coding, direction: str, cfg: dict) -> tuple[tuple[str, dict], ...]:
    return ((direction, stream_mode(cfg, direction)),) if c.code else ()


# -- what would fit, and --fit -------------------------------------------------------------------

def alternatives(f: Facts, bus: BusFormat, mode: str, budget: float, coded: bool,
                 ratio_of: RatioOf) -> tuple[Alternative, ...]:
    """The formats that would fit `budget` bytes/s, each the least change of its kind: the
    highest standard rate below this one, 16 bits for a 32-bit stream, one channel for a stereo
    one; when none alone does, the highest rate with all of them. Never a change already in
    effect. `ratio_of(bus, payload)` is the coder's ratio on that stream."""
    def fits(dst: BusFormat) -> Alternative | None:
        size = payload(f, mode, dst)
        if size <= 0:
            return None
        wire = protocol.stream_rate(dst.rate, dst.bits, dst.channels, size)
        if wire <= budget:
            return Alternative(dst)
        if not coded or wire / FIT_MAX_RATIO > budget:
            return None
        ratio = ratio_of(dst, size)
        return Alternative(dst, ratio) if wire / ratio <= budget else None

    out = []
    for r in (r for r in fit.STANDARD_RATES if r < bus.rate):
        a = fits(BusFormat(r, bus.bits, bus.channels))
        if a is not None:
            out.append(a)
            break
    if bus.bits == 32 and (a := fits(BusFormat(bus.rate, 16, bus.channels))) is not None:
        out.append(a)
    if bus.channels == 2 and (a := fits(BusFormat(bus.rate, bus.bits, 1))) is not None:
        out.append(a)
    if not out and (bus.bits == 32 or bus.channels == 2):
        for r in (r for r in (bus.rate, *fit.STANDARD_RATES) if r <= bus.rate):
            a = fits(BusFormat(r, 16, 1))
            if a is not None:
                out.append(a)
                break
    return tuple(out)


def head_ratio(src: BusFormat, head: bytes) -> RatioOf:
    """The coder's ratio on the stream's first seconds as another stream would carry them
    (resampled, the top 16 bits, the left channel), counting what each coded frame costs on
    the wire, so that what is proposed really fits."""
    def ratio_of(dst: BusFormat, size: int) -> float:
        e = fit.estimate(src, dst, head, size, near_lossless=False, coded=True, mix=False)
        wire = protocol.stream_rate(dst.rate, dst.bits, dst.channels, size)
        return min(e.ratio or 1.0, wire / max(e.need, 1e-9))
    return ratio_of


def fit_estimate(f: Facts, opts: BusOptions, bus: BusFormat, head: bytes, budget: float,
                 coded: bool) -> fit.Estimate | None:
    """The least change that makes the stream fit `budget` bytes/s (audio/fit.py), tried on its
    first seconds: near-lossless as it is; else, for each channel count (this one, then one
    unless the channels were given), the highest standard rate (unless the rate was given) that
    fits, lossless or near-lossless, and of those two the one with the higher SNR. None: nothing fits."""
    if coded:
        e = fit.estimate(bus, bus, head, payload(f, "tx", bus), near_lossless=True, coded=True)
        if e.need <= budget:
            return e
    found = []
    chans = [bus.channels] + ([1] if bus.channels == 2 and opts.channels is None else [])
    for ch in chans:
        rates = [bus.rate] if ch != bus.channels else []
        if opts.rate is None:
            rates += [r for r in fit.STANDARD_RATES if r < bus.rate]
        for r in rates:
            dst = BusFormat(r, bus.bits, ch)
            size = payload(f, "tx", dst)
            if size <= 0:
                continue
            raw = protocol.stream_rate(r, bus.bits, ch, size)
            if raw / (FIT_MAX_RATIO if coded else 1.0) > budget:
                continue
            e = None
            for near in ((False, True) if coded else (False,)):
                e = fit.estimate(bus, dst, head, size, near_lossless=near, coded=coded)
                if e.need <= budget:
                    break
            if e is not None and e.need <= budget:
                found.append(e)
                break
    return max(found, key=lambda e: math.inf if e.snr_db is None else e.snr_db, default=None)


def cannot_fit(f: Facts, opts: BusOptions, bus: BusFormat, have: float, coded: bool) -> Refusal:
    return Refusal(rf.CANNOT_FIT, bus, f.board, have=have, kept_rate=opts.rate is not None,
                   kept_channels=opts.channels is not None and bus.channels == 2,
                   mono_possible=opts.channels is None or bus.channels == 1, coded=coded,
                   lowest_rate=min(fit.STANDARD_RATES))


# -- the streams ----------------------------------------------------------------------------------

def play(f: Facts, opts: BusOptions, bus: BusFormat, head: Head) -> Plan | Refusal:
    """Playing `bus` (the file's audio at the bus format): coded when the link needs it; with
    opts.fit, a stream that does not fit is made to (the least audible change)."""
    cfg = config(f, opts, "tx", bus)

    def peek() -> float:
        data = head()
        return wirecode.estimate_ratio(data, bus.bits, bus.channels, cfg["payload"]) if data else 1.0

    def advise(have: float, coded: bool) -> tuple[tuple[Alternative, ...], fit.Estimate | None]:
        data = head()
        budget = have * LINK_HEADROOM
        found = alternatives(f, bus, "tx", budget, coded, head_ratio(bus, data))
        return found, fit_estimate(f, opts, bus, data, budget, coded) if data else None

    c = _coding(f, opts, bus, "up", cfg["payload"], peek, None if opts.fit else advise)
    if isinstance(c, Refusal):
        return _fitted_play(f, opts, bus, head) if opts.fit and c.kind != rf.CANNOT_CODE else c
    return Plan(bus, _coded(cfg, c), c.have, _loads(c, "up", cfg))


def _fitted_play(f: Facts, opts: BusOptions, bus: BusFormat, head: Head) -> Plan | Refusal:
    """--fit: what makes a stream the link cannot carry fit, coded when the board can decode."""
    have = f.link["up"]
    coded = why_not_code(f.who, opts) is None
    e = fit_estimate(f, opts, bus, head(), have * LINK_HEADROOM, coded)
    if e is not None and e.coded and "up" in f.coder_errors:
        coded = False  # the board could not take the decoder after all: raw, then
        e = fit_estimate(f, opts, bus, head(), have * LINK_HEADROOM, coded)
    if e is None:
        return cannot_fit(f, opts, bus, have, coded)
    cfg = config(f, opts, "tx", e.dst)
    _coded(cfg, Coding(e.coded, have, e.ratio))
    return Plan(e.dst, cfg, have, (("up", stream_mode(cfg, "up")),) if e.coded else (), e)


def resized(p: Plan, f: Facts, opts: BusOptions) -> Plan:
    """A play plan's sizes worked out again from `f`: a --fit stream's ring is sized from the
    board as it is after loading its coder (which takes some of its RAM)."""
    cfg = config(f, opts, "tx", p.bus)
    cfg.update({k: p.cfg[k] for k in ("code", "code_ratio_estimate") if k in p.cfg})
    return replace(p, cfg=cfg)


def record(f: Facts, opts: BusOptions, bus: BusFormat, frames: int | None = None) -> Plan | Refusal:
    """Recording `bus`, coded when the link needs it (counting on what recordings compress at);
    `frames`: the board stops by itself after that many."""
    cfg = config(f, opts, "rx", bus)

    def advise(have: float, coded: bool) -> tuple[tuple[Alternative, ...], None]:
        return alternatives(f, bus, "rx", have * LINK_HEADROOM, coded,
                            lambda dst, size: RX_RATIO_FLOOR.get(dst.bits, 1.0)), None

    c = _coding(f, opts, bus, "down", cfg["payload"], None, advise)
    if isinstance(c, Refusal):
        return c
    _coded(cfg, c)
    if frames is not None:
        cfg["frames"] = frames
    return Plan(bus, cfg, c.have, _loads(c, "down", cfg))


def duplex(f: Facts, opts: BusOptions, dx: DuplexOptions, bus: BusFormat, rx_frames: int,
           tx_ratio: float | None = None) -> Plan | Refusal:
    """A duplex exchange: each half coded as play and record decide it, and then both halves or
    neither (the board codes both); `tx_ratio`: what the play half codes at."""
    cfg = duplex_config(f, opts, dx, bus, rx_frames)
    cfg["mode"] = "duplex"  # a coder part loaded for a half comes with duplex's module, not play's

    def advise(have: float, coded: bool) -> tuple[tuple[Alternative, ...], None]:
        return alternatives(f, bus, "tx", have * LINK_HEADROOM, False, lambda dst, size: 1.0), None

    up = _coding(f, opts, bus, "up", cfg["payload"], (lambda: tx_ratio) if tx_ratio else None, advise)
    if isinstance(up, Refusal):
        return up
    _coded(cfg, up).pop("code", None)
    down = _coding(f, opts, bus, "down", cfg["payload"], None, advise)
    if isinstance(down, Refusal):
        return down
    _coded(cfg, down)
    load: tuple[tuple[str, dict], ...] = ()
    if up.code or down.code:
        why = f.coder_errors.get("up") or f.coder_errors.get("down")
        if why is not None:
            return Refusal(rf.CANNOT_CODE, bus, f.board, why=why, duplex=True)
        cfg["code"] = 1
        load = (*_loads(up, "up", cfg), *_loads(down, "down", cfg), ("up", {"mode": "duplex"}),
                ("down", {"mode": "duplex"}))
    return Plan(bus, cfg, down.have, load)


def duplex_ratio(f: Facts, bus: BusFormat, head: Head | None) -> float:
    """What the play half of a duplex exchange can count on coded: the coder's ratio on the play
    file's first seconds (`head()`); without a file (echo) the recording's floor."""
    if head is None:
        return RX_RATIO_FLOOR.get(bus.bits, 1.0)
    data = head()
    return wirecode.estimate_ratio(data, bus.bits, bus.channels, payload(f, "tx", bus)) if data else 1.0


def fit_duplex(f: Facts, opts: BusOptions, bus: BusFormat, head: Head | None = None
               ) -> fit.Estimate | Refusal | None:
    """Before a duplex exchange (both halves share `bus`): None when it fits as it is or coded
    (`duplex` then decides the coding), or the link is not measured; with opts.fit, the rate and
    channels that make it fit, tried on the play file's first seconds (`head()`); else a Refusal
    saying what would fit."""
    if f.link is None:
        return None
    rates = f.link
    have = min(rates["up"], rates["down"])
    budget = have * LINK_HEADROOM
    wire = protocol.stream_rate(bus.rate, bus.bits, bus.channels, payload(f, "tx", bus))
    if wire <= budget:
        return None
    if why_not_code(f.who, opts) is None:
        up, down = wire / duplex_ratio(f, bus, head), wire / RX_RATIO_FLOOR.get(bus.bits, 1.0)
        if up <= rates["up"] * LINK_HEADROOM and down <= rates["down"] * LINK_HEADROOM:
            return None
    e = fit_estimate(f, opts, bus, head(), budget, False) if head is not None else None
    if opts.fit:
        return e if e is not None else cannot_fit(f, opts, bus, have, False)
    return Refusal(rf.DUPLEX_TOO_FAST, bus, f.board, need=wire, have=rates["up"], have_down=rates["down"],
                   alternatives=alternatives(f, bus, "tx", budget, False, lambda dst, size: 1.0), fit=e)
