"""Why a stream cannot start, and what would fit instead, as data; said in plain words here, in the
command line's flags by the command line (cli/advice.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from i2scli.audio.busformat import BusFormat
from i2scli.link.errors import BoardError, TooFast

# refusal kinds
TOO_FAST = "too-fast"  # the link cannot carry the stream as it would be sent
CODED_TOO_FAST = "coded-too-fast"  # not even coded
DUPLEX_TOO_FAST = "duplex-too-fast"  # a duplex exchange, each way, even coded
CANNOT_FIT = "cannot-fit"  # --fit found nothing that fits
CANNOT_CODE = "cannot-code"  # coding was asked for (or a duplex half needs it) and the board cannot


@dataclass(frozen=True)
class Alternative:
    """A format that would fit: `bus`, sent coded at about `ratio`:1 (None: it fits as it is)."""

    bus: BusFormat
    ratio: float | None = None


@dataclass(frozen=True)
class Refusal:
    """A stream refused before it starts. `alternatives`: the least changes of rate, bits and
    channels that would fit (None: not worked out); `fit`: what making it fit would do (a
    fit.Estimate; None: nothing, or not tried)."""

    kind: str
    src: BusFormat  # the stream as asked for
    board: str
    direction: str = "up"  # up: to the board; down: from it
    need: float = 0.0  # wire bytes/s as it would be sent
    have: float = 0.0  # what the link carries that way (duplex: up)
    have_down: float | None = None  # duplex: what it carries down
    uncompressed: str | None = None  # why it goes uncompressed: the board could not load its coder
    no_coding: str | None = None  # why it cannot be sent coded either
    coded_need: float | None = None  # coded wire bytes/s (CODED_TOO_FAST)
    ratio: float | None = None  # the ratio that estimate counted on
    ratio_measured: bool = False  # on the stream's first seconds (else what recordings can count on)
    alternatives: tuple[Alternative, ...] | None = None
    fit: object = None  # fit.Estimate | None
    kept_rate: bool = False  # CANNOT_FIT: the rate was given, so kept
    kept_channels: bool = False  # CANNOT_FIT: two channels were given, so kept
    mono_possible: bool = True  # CANNOT_FIT: one channel was allowed
    coded: bool = False  # CANNOT_FIT: whether it could be coded
    why: str = ""  # CANNOT_CODE: the reason
    duplex: bool = False  # CANNOT_CODE: a duplex stream (both halves coded or neither)

    lowest_rate: int = 8000  # CANNOT_FIT: the lowest rate it tried

    def message(self, advice: str | None = None, *, kept: list[str] | None = None, by: str = "") -> str:
        """One line. `advice`: what would fit, worded by the caller (default: plain words);
        CANNOT_FIT: `kept` names what was given and kept, `by` what could not make it fit."""
        if advice is None:
            advice = plain_advice(self)
        if self.kind == CANNOT_CODE:
            return f"cannot compress this {'duplex ' if self.duplex else ''}stream: {self.why}"
        where = "to" if self.direction == "up" else "from"
        if self.kind == TOO_FAST:
            what = self.src.describe() + (f" (uncompressed: {self.uncompressed})" if self.uncompressed else "")
            text = (f"{what} needs {self.need / 1000:.1f} kB/s {where} the board, but the link to {self.board} "
                    f"carries {self.have / 1000:.1f} kB/s (measured): {advice}")
            return text + (f"; it cannot be sent compressed: {self.no_coding}" if self.no_coding else "")
        if self.kind == CODED_TOO_FAST:
            measured = "its first seconds compress" if self.ratio_measured else "recordings can count on"
            help_ = ["compression cannot help: this content does not compress"] if self.ratio < 1.1 else []
            return (f"{self.src.describe()} needs {self.need / 1000:.1f} kB/s {where} the board, "
                    f"{self.coded_need / 1000:.1f} kB/s compressed ({measured} {self.ratio:.2f}:1), but the link "
                    f"to {self.board} carries {self.have / 1000:.1f} kB/s (measured): {'; '.join([*help_, advice])}")
        if self.kind == DUPLEX_TOO_FAST:
            return (f"{self.src.describe()} needs {self.need / 1000:.1f} kB/s each way, but the link to {self.board} "
                    f"carries {self.have / 1000:.1f} kB/s up and {self.have_down / 1000:.1f} kB/s down (measured; "
                    f"even coded): {advice}")
        kept = plain_kept(self) if kept is None else kept
        if kept:
            why = f" keeping the {' and '.join(kept)} you gave"
        else:
            lowest = f"{self.lowest_rate} Hz" + (" mono" if self.mono_possible else "")
            why = f" not even at {lowest}" + (" near-lossless" if self.coded else " (this stream cannot be coded)")
        return (f"{by}cannot make {self.src.describe()} fit the link to {self.board}, which carries "
                f"{self.have / 1000:.1f} kB/s (measured):{why}")

    def error(self) -> BoardError:
        """The exception that says it: TooFast (exit 4) for a link too slow, else BoardError."""
        e = BoardError(self.message()) if self.kind == CANNOT_CODE else TooFast(self.message())
        e.refusal = self
        return e


def fmt_list(items: list[str]) -> str:
    if len(items) <= 2:
        return " or ".join(items)
    return ", ".join(items[:-1]) + ", or " + items[-1]


def changes(src: BusFormat, dst: BusFormat) -> list[tuple[str, int]]:
    """What `dst` changes of `src`: ("rate", Hz), ("bits", 16), ("channels", 1), in that order."""
    out = []
    if dst.rate != src.rate:
        out.append(("rate", dst.rate))
    if dst.bits != src.bits:
        out.append(("bits", dst.bits))
    if dst.channels != src.channels:
        out.append(("channels", dst.channels))
    return out


def advice_text(r: Refusal, name: Callable[[str, int], str], fit_name: Callable[[object], str], generic: str) -> str:
    """What would fit, each alternative named by `name(kind, value)` and joined; --fit's estimate
    by `fit_name(estimate)`; `generic` when the alternatives were not worked out."""
    if r.alternatives is None:
        return generic
    items = [" ".join(name(k, v) for k, v in changes(r.src, a.bus))
             + (f" (coded about {a.ratio:.1f}:1)" if a.ratio is not None else "") for a in r.alternatives]
    if r.fit is not None:
        items.append(fit_name(r.fit))
    if not items:
        return "nothing fits this link, not even at 8000 Hz"
    return "fits: " + fmt_list(items)


_PLAIN = {"rate": "{} Hz", "bits": "{}-bit", "channels": "{} channel"}


def plain_advice(r: Refusal) -> str:
    return advice_text(r, lambda k, v: "mono" if (k, v) == ("channels", 1) else _PLAIN[k].format(v),
                       lambda e: f"made to fit ({e.describe(r.src)})",
                       "a lower rate, fewer bits or one channel")


def plain_kept(r: Refusal) -> list[str]:
    return (["rate"] if r.kept_rate else []) + (["channel count"] if r.kept_channels else [])
