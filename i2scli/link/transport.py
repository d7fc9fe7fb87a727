"""mpremote's serial transport, with every read it makes bounded in bytes and in time.

mpremote's `read_until` looks at its overall deadline only when no byte waits, and grows its
buffer a byte at a time; its `enter_raw_repl` empties the input for as long as bytes keep
coming. A board that talks forever (a program that turned Ctrl-C off and prints in a loop), or
an endpoint that sends random bytes, would keep `i2s` there for good. Here the deadline is
looked at on every byte, what is kept is the last MAX_KEEP bytes (enough for any marker and a
traceback), and the input is emptied for at most DRAIN_S. mpremote also prints what it read
when the raw REPL cannot be entered, on our stdout (where `info --json` and `record -` write):
those prints go nowhere; the error that follows says what failed.
"""

from __future__ import annotations

import select
import sys
import time


def _mpremote_package() -> None:
    """The `mpremote` package without running its `__init__`, which only looks mpremote's own
    version up in the installed metadata (importing importlib.metadata and scanning the
    distributions: 20-40 ms of a warm `i2s` command); its transport modules need none of it."""
    if "mpremote" in sys.modules:
        return
    import importlib.machinery
    import types

    spec = importlib.machinery.PathFinder.find_spec("mpremote")
    if spec is None or not spec.submodule_search_locations:
        return  # (not where a path finder sees it: the ordinary import finds it)
    mod = types.ModuleType("mpremote")
    mod.__spec__, mod.__path__, mod.__file__ = spec, list(spec.submodule_search_locations), spec.origin
    mod.__package__, mod.__version__ = "mpremote", "0.0.0-unread"
    sys.modules["mpremote"] = mod


_mpremote_package()

from mpremote import transport_serial  # noqa: E402
from mpremote.transport import TransportError  # noqa: E402
from mpremote.transport_serial import SerialTransport  # noqa: E402

from i2scli.link import halt  # noqa: E402

MAX_KEEP = 64 * 1024  # bytes kept while waiting for a marker
DRAIN_S = 0.25  # the longest time spent throwing away what waits before Ctrl-A
OVERALL_S = 30.0  # a read_until given no overall deadline ends by this one
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"


def _wait_readable(s, seconds: float) -> None:
    """Wait until the port has bytes, for at most `seconds`: on a port with a file descriptor
    (posix serial, pty) the wait ends as the first byte arrives, not at the end of a fixed nap,
    which on a reply-by-reply start (raw REPL, bootstrap, upload) added up to tens of ms."""
    try:
        fd = s.fileno()
    except (AttributeError, OSError, ValueError):  # a URL port (rfc2217://, socket://), a borrowed object
        time.sleep(seconds)
        return
    select.select([fd], [], [], seconds)


def _no_print(*args, **kwargs) -> None:
    """mpremote's diagnostic prints: not on our stdout (it carries JSON or audio)."""


# mpremote's module-level name lookup finds this before the built-in print
transport_serial.print = _no_print  # type: ignore[attr-defined]


class BoundedTransport(SerialTransport):
    def read_until(self, min_num_bytes, ending, timeout=10, data_consumer=None, timeout_overall=None):
        """mpremote's read_until (the bytes up to and including `ending`, or what came before a
        timeout), byte by byte so that nothing past `ending` is taken from the next step, but with
        its deadlines looked at on every byte and at most MAX_KEEP bytes kept."""
        start = last = time.monotonic()
        overall = timeout_overall if timeout_overall is not None else max(OVERALL_S, 3 * (timeout or 0))
        data = bytearray()
        s = self.serial
        n = len(ending)
        while not data.endswith(ending):
            halt.check()
            now = time.monotonic()
            if now - start >= overall or (timeout is not None and now - last >= timeout):
                break
            byte = s.read(1) if s.in_waiting else b""
            if not byte:
                _wait_readable(s, 0.005)
                continue
            last = now
            if data_consumer is not None:
                data_consumer(byte)
                data[:] = byte
                continue
            data += byte
            if len(data) > MAX_KEEP:
                del data[:len(data) - MAX_KEEP + max(n, 1024)]
        return bytes(data)

    def enter_raw_repl(self, soft_reset=True, timeout_overall=10):
        """Ctrl-C, what waits thrown away (for at most DRAIN_S), Ctrl-A and the raw REPL's banner,
        as mpremote does it (no soft reset in i2s), all within `timeout_overall`."""
        if soft_reset:
            return super().enter_raw_repl(soft_reset, timeout_overall)
        s = self.serial
        start = time.monotonic()
        s.write(b"\r\x03")
        end = start + min(DRAIN_S, timeout_overall / 4)
        while time.monotonic() < end:
            halt.check()
            n = min(s.in_waiting, MAX_KEEP)
            if not n:
                break
            s.read(n)
        s.write(b"\r\x01")
        left = max(0.0, timeout_overall - (time.monotonic() - start))  # the drain is part of the budget
        data = self.read_until(1, RAW_BANNER, timeout_overall=left)
        if not data.endswith(RAW_BANNER):
            raise TransportError("could not enter raw repl")
        self.in_raw_repl = True


class BorrowedTransport(BoundedTransport):
    """The transport on a pyserial port another program opened and hands over (an open
    `serial.Serial`, pytest-embedded's `dut.serial.proc`): used as it is, and at the end left
    open with the settings it came with (baud rate, timeouts), for its owner to go on."""

    def __init__(self, ser):
        self.in_raw_repl = False
        self.use_raw_paste = True
        self.mounted = False
        self.device_name = ser.port or "a pyserial port"
        self.serial = ser
        self.is_pty = False
        self.saved = ser.get_settings()

    def close(self):
        self.serial.apply_settings(self.saved)

