"""Exit codes, documented in README.md. One place, so every command agrees."""

from __future__ import annotations

from enum import IntEnum


class AudioError(Exception):
    """A problem with an audio file or format, with a one-line message meant for the user
    (here, not in the audio package, so that catching it does not import numpy)."""


class Exit(IntEnum):
    OK = 0
    FILE = 1  # an input or output file could not be used
    USAGE = 2  # bad option or value (click's own code)
    NO_DEVICE = 3  # no port, port busy, board not found
    BOARD = 4  # the board cannot do it: no machine.I2S, pins or rate it rejects, too fast for the link
    LINK = 5  # link or protocol failure: board lost, timeouts, CRC errors, board reset
    STRICT = 6  # --strict: underruns, overruns or clipping happened
    CHECK = 7  # i2s test: a check failed (a limit not met, or the loopback carries nothing)
    INTERRUPTED = 130  # stopped by SIGINT, SIGTERM or SIGHUP (what was received is kept)


def plain_setting(kind: str, value: object = None) -> str:
    """A setting a message advises, in plain words: ("pin", ("tx", "sd")) is "TX sd"; the command
    line names the same settings by its flags (cli/advice.py)."""
    if kind == "pin":  # (bus or None: the one bus of a stream, key)
        bus, key = value
        return f"{bus.upper()} {key}" if bus else key
    if kind == "rate":
        return f"{value} Hz"
    if kind == "bits":
        return f"{value}-bit"
    if kind == "channels":
        return "mono" if value == 1 else f"{value} channels"
    if kind == "bus":  # an audio.BusFormat
        return f"rate {value.rate}, bits {value.bits}, channels {value.channels}"
    return {"board": "a board preset", "no_probe": "no link probe", "probe": "a fresh link probe",
            "baud": "the baud setting", "baud_n": "a baud setting", "board_name": "a board name",
            "format": "rate, bits and channels", "format_part": "rate, bits or channels",
            "channels_map": "a channels map"}[kind]


class Worded:
    """A message that names settings as data: its parts, each a piece of text or a setting
    (kind, value), said in plain words by str() or with `say(name)` (the command line: as flags)."""

    def __init__(self, *parts: str | tuple[str, object]):
        self.parts = parts

    def say(self, name=plain_setting) -> str:
        return "".join(p if isinstance(p, str) else name(*p) for p in self.parts)

    __str__ = say


def worded(cls: type[Exception], *parts: str | tuple[str, object]) -> Exception:
    """An exception of `cls` whose message names settings (`e.worded`: a Worded): plain in str(e)."""
    w = Worded(*parts)
    e = cls(w.say())
    e.worded = w
    return e


def visible(text: str) -> str:
    """Text from a board (or any endpoint) as it may go to a terminal: every control or escape
    character, and anything else not printable, shown as a Python escape (``\\x1b``), so that
    what the board sent cannot set a terminal's title, clear its screen or break a line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def exit_on_signals() -> None:
    """Until a command installs its own handlers (cli.run.stop_on_signals), SIGINT, SIGTERM and
    SIGHUP end `i2s` quietly with INTERRUPTED: nothing has started that needs keeping, and a
    signal during start-up must not print a traceback or die by the signal. A SIGINT ignored
    at start (a background job) stays ignored."""
    import signal

    def on_signal(signum, frame):
        raise SystemExit(Exit.INTERRUPTED)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, on_signal)
