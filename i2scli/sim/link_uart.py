"""UART links: the host's baud rate read off the pty, the board's set by machine.UART, and
the pacers that follow both."""

from __future__ import annotations

import array
import fcntl
import os
import struct
import termios
import time

TCGETS2 = 0x802C542A  # Linux: struct termios2, whose c_ospeed is the rate as a plain number
BAUD_POLL_S = 0.005  # the host's baud rate is read from the pty this often (and whenever data moves)

_SPEEDS = {getattr(termios, n): int(n[1:]) for n in dir(termios)
           if n[:1] == "B" and n[1:].isdigit()}  # termios speed constants -> baud


class UartBaud:
    """VirtualBoard's baud rates (UART links only)."""

    def _poll_host_baud(self) -> None:
        """The rate the host's serial driver set on the port (pyserial: tcsetattr/TCSETS2)."""
        fd = self._master
        if fd is None:
            return
        try:
            buf = bytearray(44)
            fcntl.ioctl(fd, TCGETS2, buf)
            baud = struct.unpack_from("<I", buf, 40)[0]
        except OSError:
            try:
                speed = termios.tcgetattr(fd)[5]
            except (OSError, termios.error):
                return
            baud = _SPEEDS.get(speed, speed)
        if baud != self.host_baud:
            self.host_baud = baud
            self._update_link()

    def _update_link(self) -> None:
        """UART links: the pacers follow the baud rates (8N1: 10 bits a byte)."""
        if not self._uart:
            return
        self.line_baud = self.bridge.line_rate(self.host_baud) if self.host_baud else None
        # host -> board: the bridge sends at its line rate; board -> host: the board at its own
        self._in_pacer.rate = max(1, (self.line_baud or self.host_baud or 1) // 10)
        self._out_pacer.rate = max(1, self.board_baud // 10)

    def _baud_loop(self) -> None:
        while not self._stopping.wait(BAUD_POLL_S):
            self._poll_host_baud()

    def _on_uart(self, e: dict, t: int) -> None:
        """machine.UART(0, baudrate=N) on the board. The board waits for our reply, so what it
        printed before the call leaves at the old rate and what it prints after at the new one."""
        try:
            if self._uart and e.get("repl") and e.get("baudrate"):
                deadline = time.monotonic() + 2.0
                buf = array.array("i", [0])
                while time.monotonic() < deadline and not self._stopping.is_set():
                    fcntl.ioctl(self._out_r, termios.FIONREAD, buf)
                    if not buf[0] and not self._out_busy:
                        break
                    time.sleep(0.0005)
                self.board_baud = int(e["baudrate"])
                self._update_link()
        finally:
            os.write(self._rx_w, b"\0")
