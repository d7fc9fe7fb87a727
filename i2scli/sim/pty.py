"""The port a virtual board offers: a raw pseudo-terminal, and the model's end of it."""

from __future__ import annotations

import os
import select
import termios
import tty


def raw_pty() -> tuple[int, int, str]:
    """A pseudo-terminal in raw mode with no echo, as a serial device is: (master, slave, path)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    return master, slave, os.ttyname(slave)


def close_port(board) -> None:
    """Close both ends of `board`'s pty (its _master and _slave), once."""
    for name in ("_master", "_slave"):
        fd = getattr(board, name, None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
            setattr(board, name, None)


def master_ready(board, timeout: float = 0.1, write: bool = False) -> int | None:
    """`board`'s pty master once it can be read (or written) within `timeout`: its fd; -1 if it
    cannot yet; None once the port is closed. select's errors are the caller's (the port may
    close meanwhile)."""
    fd = board._master
    if fd is None:
        return None
    if write:
        ready = select.select([], [fd], [], timeout)[1]
    else:
        ready = select.select([fd], [], [], timeout)[0]
    return fd if ready else -1
