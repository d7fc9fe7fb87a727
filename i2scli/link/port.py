"""The port: any pyserial URL opened exclusively through mpremote's serial transport, and the
byte-level reads and writes every other room of the link uses."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import serial

from i2scli.link import halt
from i2scli.link.errors import LinkError, NoDevice, first_line

READ_TIMEOUT = 0.05  # the stream loops' short reads
READ_MAX = 64 * 1024  # bytes taken from the port in one read
KEEP_MAX = 64 * 1024  # bytes kept while waiting for a marker

# rfc2217:// with its memory bounded (urls/protocol_rfc2217.py) before pyserial's own
if "i2scli.link.urls" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.insert(0, "i2scli.link.urls")


def port_name(port) -> str:
    """What a port is called in messages: its URL, or an open pyserial port's device."""
    return port if isinstance(port, str) else (getattr(port, "port", None) or "a pyserial port")


def open_transport(port):
    """mpremote's serial transport on any pyserial URL, opened exclusively; or on an open
    pyserial port handed over (`serial.SerialBase`), which is left open at the end."""
    from i2scli.link.transport import BorrowedTransport, BoundedTransport, TransportError  # (mpremote lightly)

    if isinstance(port, serial.SerialBase):
        if not port.is_open:
            raise NoDevice(f"the serial port {port_name(port)} handed to i2s is not open")
        return _tuned(BorrowedTransport(port))
    if port.startswith("sim://"):
        import i2scli.sim  # noqa: F401  (registers sim://; numpy and all: only for virtual boards)
        from i2scli.sim.protocol_sim import check_url

        try:
            check_url(port)
        except ValueError as e:
            raise NoDevice(str(e)) from None
    elif "://" not in port and not os.path.exists(port) and not port.upper().startswith("COM"):
        raise NoDevice(f"no such port {port} (`i2s devices` lists ports)")
    try:
        t = BoundedTransport(rfc2217_url(port), baudrate=115200, exclusive=True)
    except (OSError, serial.SerialException, ValueError, TransportError) as e:
        msg = first_line(e)
        if "failed to access" in msg and "://" not in port:
            msg = _open_error(port) or msg  # mpremote drops pyserial's reason: ask pyserial
        if "lock" in msg.lower() or "busy" in msg.lower() or "exclusive" in msg.lower():
            raise NoDevice(f"{port} is in use by another program (close it, or pick another port)") from None
        raise NoDevice(f"cannot open {port}: {msg}") from None
    return _tuned(t)


def _tuned(t):
    # Short reads for the stream loops, set once: on rfc2217:// every change is renegotiated.
    t.serial.timeout = READ_TIMEOUT
    sock = getattr(t.serial, "_socket", None)
    if sock is not None:  # socket:// and rfc2217://: credits must not wait for Nagle
        try:
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    return t


def rfc2217_url(port: str) -> str:
    """rfc2217:// URLs open without waiting for the server's answer to DTR/RTS (pyserial's
    `ign_set_control`): ser2net on a pseudo-terminal, or on a device without modem lines, never
    answers them, and pyserial would give up after 3 s ("timeout while waiting for option
    'control'"). The lines are still set; i2s needs no confirmation of them."""
    if not port.startswith("rfc2217://") or "ign_set_control" in port:
        return port
    return port + ("&" if "?" in port else "?") + "ign_set_control"


@contextmanager
def patient(t, timeout: float = 1.0):
    """mpremote's REPL handshakes want reads that wait; the stream loops want short ones."""
    t.serial.timeout = timeout
    try:
        yield
    finally:
        t.serial.timeout = READ_TIMEOUT


class Port:
    """An open transport and its name; reads and writes that fail as LinkError."""

    def __init__(self, transport, name: str):
        self.transport = transport
        self.serial = transport.serial
        self.name = name

    def read_some(self) -> bytes:
        """What has arrived (at most READ_MAX bytes), or what arrives within READ_TIMEOUT."""
        halt.check()
        s = self.serial
        try:
            n = s.in_waiting
            if n:
                return s.read(min(n, READ_MAX))
            return s.read(1)  # waits at most READ_TIMEOUT
        except (OSError, serial.SerialException) as e:
            raise LinkError(f"lost the board at {self.name}: {first_line(e)}") from None

    def read_until(self, marker: bytes, timeout: float, buf: bytearray | None = None) -> bytes:
        """What arrives until `marker` has (or `timeout` has passed), after `buf`; of a board that
        talks on, the last KEEP_MAX bytes."""
        buf = bytearray() if buf is None else buf
        deadline = time.monotonic() + timeout
        start = 0  # where `marker` may begin in what has not been searched yet
        while buf.find(marker, start) < 0 and time.monotonic() < deadline:
            start = max(0, len(buf) - len(marker) + 1)
            buf += self.read_some()
            if len(buf) > KEEP_MAX:
                cut = len(buf) - KEEP_MAX
                del buf[:cut]
                start = max(0, start - cut)
        return bytes(buf)

    def write(self, data: bytes) -> None:
        try:
            self.serial.write(data)
        except (OSError, serial.SerialException) as e:
            raise LinkError(f"lost the board at {self.name}: {first_line(e)}") from None

    def waiting(self) -> int:
        return self.serial.in_waiting

    def close(self) -> None:
        try:
            self.transport.exit_raw_repl()
        except Exception:
            pass
        try:
            self.transport.close()
        except Exception:
            pass


def _open_error(port: str) -> str | None:
    """Why pyserial cannot open a device path exclusively (None if it can)."""
    try:
        serial.Serial(port, exclusive=True).close()
    except Exception as e:  # noqa: BLE001 - any reason is the answer
        return first_line(e)
    return None
