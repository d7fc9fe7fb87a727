"""The link from board to host: the board's output through faults, pacing, (UART) garbling
and the bridge's packets to the pty."""

from __future__ import annotations

import os
import time

from i2scli.sim.pacing import now_us
from i2scli.sim.pty import master_ready
from i2scli.sim.uart import garble


class LinkOut:
    """VirtualBoard's board-to-host direction."""

    def _out_loop(self) -> None:
        import select

        held, held_t = b"", 0.0  # UART links: bytes waiting in the bridge for a USB packet
        while not self._stopping.is_set():
            timeout = 0.1
            if held:
                timeout = max(0.0, held_t + self.bridge.latency_s - time.monotonic())
            r, _, _ = select.select([self._out_r], [], [], timeout)
            if not r:
                if held:  # the bridge's latency timer: a short packet goes now
                    self._send_out(held)
                    held = b""
                continue
            self._out_busy = True
            try:
                data = os.read(self._out_r, self._out_pacer.chunk())
                if self.bridge is None:
                    self._out_chunk(data)
                    continue
                data = self._out_chunk(data, send=False)
                if not held:
                    held_t = time.monotonic()
                held += data
                full = len(held) - len(held) % self.bridge.packet
                if full:  # whole packets go at once
                    self._send_out(held[:full])
                    held, held_t = held[full:], time.monotonic()
            finally:
                self._out_busy = False

    def _out_chunk(self, data: bytes, send: bool = True) -> bytes:
        """Board output: faults, pace, (UART) garble, then to the host."""
        f = self._fault_at("out", self._out_offset, len(data))
        if f is not None:
            i = f.offset - self._out_offset
            f.fired = True
            self._event({"ev": "fault", "fault": str(f)}, now_us())
            if f.kind == "drop":
                data = data[:i] + data[i + 1:]
                self._out_offset += 1
            elif f.kind == "corrupt":
                data = data[:i] + bytes([data[i] ^ f.xor]) + data[i + 1:]
            else:
                self._fire(f)
        self._out_offset += len(data)
        self._stalled()
        self._out_pacer.wait(len(data))
        if self._bus is not None:
            self._bus.wait(len(data))
        if self._uart:
            self._poll_host_baud()
            data = garble(data, self.board_baud, self.line_baud)
        if send:
            self._send_out(data)
        return data

    def _send_out(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._stopping.is_set():
            try:
                fd = master_ready(self, self._link.stall_drop_s, write=True)
                if fd is None:
                    return
                if fd < 0:  # nobody reads: the board's USB stack gives up on this data
                    self.stats.out_dropped += len(view)
                    return
                n = os.write(fd, view)
            except BlockingIOError:
                continue
            except (OSError, ValueError, TypeError):
                return
            self.stats.out_bytes += n
            view = view[n:]
