"""What can go wrong between the host and the board, as exceptions the CLI maps to exit codes."""

from __future__ import annotations

from i2scli import protocol as proto


class LinkError(Exception):
    """The port, the link or the protocol failed."""


class NoDevice(LinkError):
    """No board at that port."""


class BoardError(Exception):
    """The board cannot do what was asked; the message is the board's own words."""


class TooFast(BoardError):
    """The stream needs more bytes per second than the link carries."""


def frame_json(f: proto.Frame, *required: str) -> dict:
    """A frame's JSON payload as the protocol defines it (an object with `required` keys), or a
    LinkError: a board that sends anything else is not (or no longer) running the agent."""
    try:
        obj = f.json()
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
        obj = None
    if not isinstance(obj, dict) or any(k not in obj for k in required):
        raise LinkError(f"the board sent a malformed {f.type.name} frame: not the i2s agent, or a damaged link")
    return obj


def board_error(f: proto.Frame) -> BoardError:
    """The agent's ERROR frame as an exception carrying its words."""
    return BoardError(str(frame_json(f).get("error", "agent error")))


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def repl_error(raw: bytes) -> str:
    """The last line of a traceback the raw REPL printed between its two \\x04 markers."""
    parts = raw.split(b"\x04")
    err = parts[1] if len(parts) > 2 else raw
    lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "the board reported an error"
