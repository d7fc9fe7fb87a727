"""Which serial port: -p/--port, I2S_PORT, or `auto` (the one attached MicroPython board).

Ports are anything pyserial opens: device paths, mpremote's shortcuts (a0 = /dev/ttyACM0,
u0 = /dev/ttyUSB0, c0 = COM0), rfc2217://, socket://, hwgrep://VID:PID, and sim://PROFILE;
and, as mpremote names them, `id:SERIAL`: the port whose USB serial number is SERIAL, which
stays the same when the board is plugged into another socket and gets another device path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from serial.tools import list_ports

from i2scli import targets
from i2scli.link.errors import NoDevice

# USB vendor (and product) ids seen on MicroPython boards and the UART bridges they sit behind
# (i2scli/targets/: each board family's module names its own)
MICROPYTHON_IDS = targets.usb_ids()


@dataclass
class PortInfo:
    path: str
    vid_pid: str | None
    serial_number: str | None
    description: str
    micropython: bool
    why: str | None


def _kind(vid: int | None, pid: int | None) -> str | None:
    if vid is None:
        return None
    return MICROPYTHON_IDS.get((vid, pid)) or MICROPYTHON_IDS.get((vid, None))


def list_devices() -> list[PortInfo]:
    out = []
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        kind = _kind(p.vid, p.pid)
        out.append(PortInfo(
            path=p.device,
            vid_pid=f"{p.vid:04x}:{p.pid:04x}" if p.vid is not None else None,
            serial_number=p.serial_number,
            description=p.description or "",
            micropython=kind is not None,
            why=kind,
        ))
    return out


def device_dicts() -> list[dict]:
    return [asdict(d) for d in list_devices()]


def expand(port: str) -> str:
    """mpremote's shortcuts: a0 -> /dev/ttyACM0, u0 -> /dev/ttyUSB0, c0 -> COM0."""
    if len(port) >= 2 and port[0] in "auc" and port[1:].isdigit():
        return {"a": "/dev/ttyACM", "u": "/dev/ttyUSB", "c": "COM"}[port[0]] + port[1:]
    return port


def by_serial(serial: str) -> str:
    """The device path of the one port whose USB serial number is `serial` (exactly, as
    pyserial reads it: on Linux from sysfs, the USB device's `serial`)."""
    if not serial:
        raise NoDevice("id: needs a USB serial number (`i2s devices` lists them): -p id:SERIAL")
    devices = list_devices()
    hits = [d for d in devices if d.serial_number == serial]
    if len(hits) == 1:
        return hits[0].path
    if hits:
        raise NoDevice(f"{len(hits)} ports have the serial number {serial!r} "
                       f"({', '.join(d.path for d in hits)}): choose one with -p PATH")
    seen = sorted({d.serial_number for d in devices if d.serial_number})
    listed = f" (attached: {', '.join(seen)})" if seen else " (no attached port reports one)"
    raise NoDevice(f"no port has the USB serial number {serial!r}{listed}: check `i2s devices`")


def resolve(port: object) -> object:
    """The port to open. `auto` (the default) needs exactly one MicroPython-looking board;
    `id:SERIAL` the one port with that USB serial number."""
    if port is not None and not isinstance(port, str):
        return port  # an open pyserial port, handed over (link.port.open_transport)
    if port and port.startswith("id:"):
        return by_serial(port[3:])
    if port and port.startswith("labgrid://"):
        from i2scli.ports import labgrid_place  # labgrid (the optional extra) only for labgrid:// ports

        return labgrid_place.resolve(port)
    if port and port != "auto":
        return expand(port)
    boards = [d for d in list_devices() if d.micropython]
    if len(boards) == 1:
        return boards[0].path
    if not boards:
        raise NoDevice("no MicroPython board found: plug one in, or give -p PORT "
                       "(`i2s devices` lists ports; `i2s sim` starts a virtual board)")
    names = ", ".join(f"{b.path} ({b.why}{', serial ' + b.serial_number if b.serial_number else ''})"
                      for b in boards)
    raise NoDevice(f"{len(boards)} boards attached ({names}): choose one with -p PORT, -p id:SERIAL or I2S_PORT")
