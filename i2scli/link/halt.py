"""A signal ends a command within a second, whatever it is waiting on.

The command line's handlers (cli.run.stop_on_signals) report each SIGINT, SIGTERM or SIGHUP
here. Until a stream has started nothing is worth keeping: the signal interrupts at once,
whatever the command was blocked on (its input, the port, the handshake with the board): exit
130, quietly, as a signal during start-up does (start.py); `finally` blocks still close the
port and leave the board at its REPL. Once a stream runs, the signal asks it to end tidily (END, the board's
SUMMARY, the recording closed with every sample received); every read from the port looks
here and gives up (`Interrupted`, a LinkError) once GRACE_S has passed since the signal, so a
board that does not answer cannot keep the command going. The board is then left to its own
watchdog, which puts it back at its REPL.

Outside the command line (the library, the pytest plugin) nothing is armed and nothing here
changes what a read does.
"""

from __future__ import annotations

import threading
import time

from i2scli.link.errors import LinkError

GRACE_S = 0.6  # from the signal to giving up on a tidy end


class Interrupted(LinkError):
    """A signal asked the command to stop, and the board did not end the stream in time."""


_stop: threading.Event | None = None
_at: float | None = None  # when the first signal came
_keeping = False  # a stream has started: a signal now ends it tidily


def arm(stop: threading.Event) -> None:
    """A command runs with `stop` as its stop flag (set by its signal handlers)."""
    global _stop, _at, _keeping
    _stop, _at, _keeping = stop, None, False


def disarm() -> None:
    global _stop, _at, _keeping
    _stop, _at, _keeping = None, None, False


def signalled() -> None:
    """From a signal handler, after it set the stop flag: interrupt now unless a stream runs."""
    global _at
    if _stop is None:
        return
    if _at is None:
        _at = time.monotonic()
    if not _keeping:
        raise SystemExit(130)  # errors.Exit.INTERRUPTED: quietly, as at start-up (start.py)


def keep() -> None:
    """A stream has started: from now on a signal ends it tidily (within GRACE_S)."""
    global _keeping
    if _stop is not None:
        _keeping = True
        if _stop.is_set():  # the signal came just before: the stream ends at its first look at the flag
            check()


def check() -> None:
    """Raise Interrupted once a signal came more than GRACE_S ago (called on every read)."""
    if _at is not None and time.monotonic() - _at > GRACE_S:
        raise Interrupted("interrupted: the board did not end the stream in time")
