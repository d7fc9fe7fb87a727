"""A refused stream said in the command line's words: what would fit as the flags that ask for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy comes with the session: only the commands that stream import it
    from i2scli.audio.busformat import BusFormat
    from i2scli.audio.fit import Estimate

GENERIC = "use a lower rate (-r), fewer bits (-b 16) or one channel (-c 1)"
_FLAGS = {"rate": "-r {}", "bits": "-b {}", "channels": "-c {}"}


_SETTING_FLAGS = {"board": "--board NAME", "no_probe": "--no-probe", "probe": "--probe", "format": "-r/-b/-c",
                  "format_part": "-r, -b or -c", "channels_map": "--channels-map", "baud": "--baud",
                  "baud_n": "--baud N", "board_name": "--board-name"}


def setting_flag(kind: str, value: object = None) -> str:
    """A setting a library message names (errors.Worded), as the flag that gives it."""
    if kind == "pin":
        bus, key = value
        return f"--{bus}-{key}" if bus else f"--{key}"
    if kind in _FLAGS:
        return _FLAGS[kind].format(value)
    if kind == "bus":
        return f"-r {value.rate} -b {value.bits} -c {value.channels}"
    return _SETTING_FLAGS[kind]


def words(e: BaseException) -> str:
    """The error's line: a refusal (`e.refusal`, from session.plan) with the flags that would
    make the stream fit; a message that names settings (`e.worded`) with their flags; any other
    error as it says itself."""
    w = getattr(e, "worded", None)
    if w is not None:
        return w.say(setting_flag)
    r = getattr(e, "refusal", None)
    if r is None:
        return str(e)
    from i2scli.session import refusal as rf

    if r.kind == rf.CANNOT_FIT:
        kept = ([f"-r {r.src.rate}"] if r.kept_rate else []) + ([f"-c {r.src.channels}"] if r.kept_channels else [])
        return r.message(kept=kept, by="--fit ")
    return r.message(rf.advice_text(r, lambda kind, value: _FLAGS[kind].format(value),
                                    lambda est: f"--fit ({est.describe(r.src)})", GENERIC))


def fit_line(e: Estimate | None, src: BusFormat, have: float | None) -> str:
    """The one line --fit says about what it does (`e` None: the stream fits as it is)."""
    if have is None:
        return "--fit: the link was not measured (--no-probe): sent as it is"
    if e is None:
        return f"--fit: {src.describe()} fits as it is (lossless, bit-exact)"
    bits = e.bits_removed
    parts = [e.method if e.dst == src else f"{e.dst.describe()} ({e.method})"]
    if e.near_lossless:
        parts.append(f"{bits['mean']:.1f} of {e.dst.bits} bits removed on average (at most {bits['max']})")
    parts.append(f"about {e.snr_db:.0f} dB SNR in the first seconds" if e.snr_db is not None else "bit-exact")
    wire = f"coded about {e.ratio:.1f}:1, " if e.coded and e.ratio else ""
    return f"--fit: {', '.join(parts)}; {wire}{e.need / 1000:.1f} kB/s of the link's {have / 1000:.1f} kB/s"
