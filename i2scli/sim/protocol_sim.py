"""pyserial URL handler for `sim://[PROFILE][?option=value&...]`.

Opening the URL starts a virtual board (`i2s sim` in a child process) and opens its
pseudo-terminal; closing the port powers the board off. Options are those of `i2s sim`
with `_` or `-`, e.g. `sim://rp2?rx_source=ramp&tx_capture=/tmp/out.wav&fault=unplug:at=2s`.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.parse

import serial
from serial.serialutil import SerialException

OPTIONS = {"profile", "bridge", "native", "tx_capture", "rx_source", "codec_release", "codec_drive", "codec_dir_pin",
           "dir_rx_level", "vcd", "events", "fault", "fs", "loopback", "clock_ppm", "sim_stats"}
FIRMWARE_PROFILE = "rp2-firmware"  # the real rp2 firmware in an emulator (i2scli/sim/firmware_board.py)


def check_url(url: str) -> None:
    """A clear ValueError for a sim:// URL that cannot work (before starting anything)."""
    from i2scli.sim.loopback import parse_loopback
    from i2scli.sim.profiles import get_profile, usb_id

    parts = urllib.parse.urlsplit(url)
    bridge = None
    loopbacks = []
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key.replace("-", "_") not in OPTIONS:
            raise ValueError(f"unknown sim:// option {key!r} (known: {', '.join(sorted(OPTIONS))})")
        if key == "bridge":
            bridge = value
        if key == "loopback":
            loopbacks.append(parse_loopback(value))
        if key.replace("-", "_") == "clock_ppm":
            from i2scli.sim.board import CLOCK_PPM_MAX

            try:
                ppm = int(value)
            except ValueError:
                raise ValueError(f"clock_ppm must be a whole number of ppm, not {value!r}") from None
            if abs(ppm) > CLOCK_PPM_MAX:
                raise ValueError(f"clock_ppm must be within ±{CLOCK_PPM_MAX}, not {ppm}")
    profile = (parts.netloc + parts.path).strip("/") or None
    if profile == FIRMWARE_PROFILE:  # the real firmware: what its board honours
        from i2scli.sim.faults import parse_fault
        from i2scli.sim.firmware_board import HONOURED, stalls

        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            if key.replace("-", "_") not in HONOURED:
                raise ValueError(f"the rp2-firmware board cannot honour {key!r} (it takes tx_capture, rx_source, "
                                 f"loopback, events and fault=stall:...)")
            if key == "fault":
                stalls([parse_fault(value)])
        return
    usb_id(profile, bridge)  # unknown profile or bridge
    if len(loopbacks) > 1:
        raise ValueError("one loopback per board")
    for lb in loopbacks:
        if lb is not None:
            lb.check_profile(get_profile(profile))


def url_usb_id(url: str) -> tuple[int, int] | None:
    """The USB (VID, PID) the board of a sim:// URL shows: its bridge's or its native USB's."""
    from i2scli.sim.profiles import usb_id

    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    if (parts.netloc + parts.path).strip("/") == FIRMWARE_PROFILE:
        from i2scli.sim.firmware_board import USB_ID

        return USB_ID
    return usb_id((parts.netloc + parts.path).strip("/") or None, query.get("bridge"))


def url_usb_product(url: str) -> str | None:
    """The USB product string of a sim:// board's bridge (None for native USB)."""
    from i2scli.sim.profiles import USB_PRODUCT, get_profile

    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    if (parts.netloc + parts.path).strip("/") == FIRMWARE_PROFILE:
        return None  # native USB
    profile = get_profile((parts.netloc + parts.path).strip("/") or None)
    if not profile.link.uart:
        return None
    return USB_PRODUCT.get((query.get("bridge") or profile.bridge or "").lower())


def sim_command(url: str) -> list[str]:
    """The `i2s sim` command line a sim:// URL stands for."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "sim":
        raise SerialException(f"not a sim:// URL: {url!r}")
    profile = (parts.netloc + parts.path).strip("/")
    args = [sys.executable, "-m", "i2scli", "sim", "--exit-with-stdin"]
    if profile:
        args += ["--profile", profile]
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        key = key.replace("-", "_")
        if key not in OPTIONS:
            raise SerialException(
                f"unknown sim:// option {key!r} (known: {', '.join(sorted(OPTIONS))})")
        args += ["--" + key.replace("_", "-"), value]
    return args


class Serial(serial.Serial):
    """A serial port whose device is a virtual board started for it."""

    _board_proc: subprocess.Popen | None = None
    usb_vid_pid: tuple[int, int] | None = None  # the board's USB ids (bridge or native USB)
    usb_product: str | None = None  # the bridge's USB product string

    @serial.Serial.port.setter
    def port(self, value):
        self._sim_url = value
        serial.Serial.port.__set__(self, value)

    def open(self):
        url = self._sim_url
        try:
            check_url(url)
        except ValueError as e:
            raise SerialException(f"could not start virtual board {url!r}: {e}") from None
        self.usb_vid_pid = url_usb_id(url)
        self.usb_product = url_usb_product(url)
        proc = subprocess.Popen(sim_command(url), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        line = proc.stdout.readline().decode().strip()
        if not line:
            err = proc.stderr.read().decode().strip().splitlines()
            proc.wait()
            raise SerialException(f"could not start virtual board {url!r}: "
                                  f"{err[-1] if err else 'no device path'}")
        self._board_proc = proc
        self._port = self.portstr = line  # the pty; the base setter would reopen the port
        try:
            super().open()
        except Exception:
            self._stop_board()
            raise
        finally:
            self._port = self.portstr = self.name = url

    def _reconfigure_port(self, force_update=False):
        # A pty has no baud per byte: the board must take what was written at the old rate
        # before the new one is set, and see the new one before anything is written at it.
        applied = getattr(self, "_applied_baud", None)
        change = self._board_proc is not None and applied is not None and applied != self._baudrate
        if change:
            self._sim_sync()
        super()._reconfigure_port(force_update)
        self._applied_baud = self._baudrate
        if change:
            self._sim_sync()

    def _sim_sync(self) -> None:
        proc = self._board_proc
        try:
            proc.stdin.write(b"sync\n")
            proc.stdin.flush()
            proc.stdout.readline()  # "synced" (or EOF: the board is gone)
        except (OSError, ValueError):
            pass

    def close(self):
        super().close()
        self._stop_board()

    @property
    def board_summary(self) -> str:
        return getattr(self, "_board_summary", "")

    def _stop_board(self):
        proc, self._board_proc = self._board_proc, None
        if proc is None:
            return
        proc.stdin.close()  # the board sees EOF and powers off, writing its outputs
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._board_summary = proc.stderr.read().decode(errors="replace").strip()
        proc.stdout.close()
        proc.stderr.close()
