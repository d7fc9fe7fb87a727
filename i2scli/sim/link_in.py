"""The link from host to board: the pty's bytes through faults, Ctrl-C and pacing into the
board's input buffer, and the stall test that tells this machine's hiccups from the board's."""

from __future__ import annotations

import array
import fcntl
import os
import signal
import termios
import time

from i2scli.sim.pacing import now_us
from i2scli.sim.pty import master_ready
from i2scli.sim.uart import garble

HOST_STALL_MAX_S = 1.0  # input held back at most this long for a board this machine descheduled


def _task_sched(path: str) -> tuple[str, int] | None:
    """A task's scheduler state ('R': running or waiting for a CPU, 'S': asleep, ...) and its
    total run-queue wait in ns (Linux /proc/PID/stat and schedstat); None where there are none."""
    try:
        with open(path + "/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0].decode()
        with open(path + "/schedstat", "rb") as f:
            return state, int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _pipe_fill(fd: int) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


class LinkIn:
    """VirtualBoard's host-to-board direction."""

    def _in_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                fd = master_ready(self)
                if fd is None:
                    return
                if fd < 0:
                    continue
                self._in_busy = True
                data = os.read(fd, self._in_pacer.chunk())
            except BlockingIOError:
                self._in_busy = False
                continue
            except (OSError, ValueError, TypeError):
                self._in_busy = False
                if self._master is None:
                    return
                time.sleep(0.01)
                continue
            try:
                self._receive(data)
            finally:
                self._in_busy = False

    def sync_input(self, limit: float = 0.5) -> None:
        """Until every byte the host has written so far has gone through the link model (at
        most `limit` s), then read the host's baud rate again. A pty carries no baud per byte:
        a host that writes, then changes its rate (or changes it, then writes) calls this in
        between, so the model times each byte at the rate it was sent at (protocol_sim does,
        for sim:// ports)."""
        end = time.monotonic() + limit
        buf = array.array("i", [0])
        quiet = 0
        while quiet < 2 and time.monotonic() < end and self._master is not None:
            try:
                fcntl.ioctl(self._master, termios.FIONREAD, buf)
            except OSError:
                break
            quiet = quiet + 1 if buf[0] == 0 and not self._in_busy else 0
            time.sleep(0.0005)
        self._poll_host_baud()

    def _receive(self, data: bytes) -> None:
        """Bytes arriving from the host, in order: faults, Ctrl-C, pace, input buffer."""
        while data and not self._stopping.is_set():
            f = self._fault_at("in", self._in_offset, len(data))
            if f is not None:
                cut = f.offset - self._in_offset
                self._receive_clean(data[:cut])
                self._in_offset += cut
                data = data[cut:]
                f.fired = True
                self._event({"ev": "fault", "fault": str(f)}, now_us())
                if f.kind == "drop":
                    data, self._in_offset = data[1:], self._in_offset + 1
                elif f.kind == "corrupt":
                    data = bytes([data[0] ^ f.xor]) + data[1:]
                else:
                    self._fire(f)
                continue
            self._receive_clean(data)
            self._in_offset += len(data)
            return

    def _receive_clean(self, data: bytes) -> None:
        if self._uart:
            # over the wire at the bridge's line rate, received at the board's UART rate
            step = self._in_pacer.chunk()
            for i in range(0, len(data), step):
                self._stalled()
                piece = data[i:i + step]
                self._poll_host_baud()
                self._in_pacer.wait(len(piece))
                self._deliver(garble(piece, self.line_baud, self.board_baud))
            return
        self._split_ctrl_c(data, self._pace_in)

    def _split_ctrl_c(self, data: bytes, sink) -> None:
        """`data` into `sink`; each interrupt character between its pieces is a Ctrl-C."""
        while data:
            if self.intr == 3 and 3 in data:
                i = data.index(3)
                sink(data[:i])
                self._ctrl_c()
                data = data[i + 1:]
            else:
                sink(data)
                return

    def _deliver(self, data: bytes) -> None:
        """UART links: bytes as the board's UART got them: Ctrl-C, then the input ring."""
        self._split_ctrl_c(data, self._buffer_in)

    def _dupterm_in(self, byte: int) -> None:
        """A byte the board's os.dupterm stream gave while it waited for input
        (runtime/_simwait.py): the interrupt character is Ctrl-C, as from the link; any other
        byte joins the input (extmod/os_dupterm.c mp_os_dupterm_rx_chr). That Ctrl-C only
        schedules the KeyboardInterrupt: the input waiting stays (TinyUSB's clearing is its own)."""
        if self.intr == 3 and byte == 3:
            self._ctrl_c(wipe=False)
        else:
            self._buffer_in(bytes((byte,)))

    def _ctrl_c(self, wipe: bool = True) -> None:
        self.stats.ctrl_c += 1
        if wipe and self._link.ctrl_c_wipes_input:
            os.set_blocking(self._in_r, False)
            try:
                while os.read(self._in_r, 65536):
                    pass
            except BlockingIOError:
                pass
            os.set_blocking(self._in_r, True)
        p = self._proc
        # The unix port exits if a second SIGINT lands while the first is pending; a real
        # board just raises once. So one signal per 50 ms at most.
        if p and p.poll() is None and time.monotonic() >= self._sigint_quiet_until:
            self._sigint_quiet_until = time.monotonic() + 0.05
            os.kill(p.pid, signal.SIGINT)
        self._event({"ev": "ctrl_c"}, now_us())

    def _pace_in(self, data: bytes) -> None:
        step = self._in_pacer.chunk()
        for i in range(0, len(data), step):
            self._stalled()
            piece = data[i:i + step]
            self._in_pacer.wait(len(piece))
            if self._bus is not None:
                self._bus.wait(len(piece))
            self._buffer_in(piece)

    def _stalled(self) -> None:
        while time.monotonic() < self._stall_until and not self._stopping.is_set():
            time.sleep(0.001)

    def _host_stalled(self, need: int) -> bool:
        """The ring has no room for `need` more bytes. A real board is never descheduled; this
        one is a process on a shared machine. True when the overflow is this machine's, once
        there is room: (a) the interpreter is runnable (state R) with the ring's bytes in its
        pipe, and when it has read them its run-queue wait (Linux schedstat) covers at least
        half the time we waited; (b) the stdin-path thread (UART links) is 1 ms or more behind.
        The input waits meanwhile (at most HOST_STALL_MAX_S). A board asleep (state S) or
        busy on its own CPU time overflows as a real one does."""
        cap = self._link.in_buffer
        proc = f"/proc/{self._proc.pid}" if self._proc is not None else None
        t0 = time.monotonic()
        before = _task_sched(proc) if proc else None
        stdin_stall = False
        while not self._stopping.is_set():
            now = time.monotonic()
            if now - t0 > HOST_STALL_MAX_S:
                return False
            piped = _pipe_fill(self._in_w)
            staged = len(self._staged) if self._uart else 0
            if cap - piped - staged >= need:
                if now - t0 < 0.0002:
                    return True
                after = _task_sched(proc) if proc else None
                grew = (after[1] - before[1]) / 1e9 if after and before else 0.0
                if stdin_stall or grew >= (now - t0) / 2:
                    self.stats.host_stall_us += round((now - t0) * 1e6)
                    return True
                return False
            # a board's stdin path is never late: a thread of ours that owes it bytes is
            stdin_stall = self._uart and staged >= cap // 2 \
                and self._stdin_pacer.owed() >= self._stdin_pacer.chunk()
            st = _task_sched(proc) if proc and piped >= cap // 2 else None
            if not stdin_stall and not (st and st[0] == "R"):
                return False
            time.sleep(0.0002)
        return False

    def _buffer_in(self, data: bytes) -> None:
        """Into the board's input buffer (the fd 0 pipe), which holds in_buffer bytes."""
        cap = self._link.in_buffer
        buf = array.array("i", [0])
        if self._uart:  # the ring holds what the stdin path has not taken yet (staged or piped)
            with self._staged_lock:
                n = max(0, min(len(data), cap - _pipe_fill(self._in_w) - len(self._staged)))
            if n < len(data) and self._host_stalled(len(data)):
                n = len(data)
            with self._staged_lock:
                n = max(0, min(n, cap - _pipe_fill(self._in_w) - len(self._staged)))
                self._staged += data[:n]
            self.stats.in_bytes += n
            if n < len(data):
                self.stats.in_dropped += len(data) - n
                self._event({"ev": "input_overflow", "dropped": len(data) - n}, now_us())
            return
        while data and not self._stopping.is_set():
            fcntl.ioctl(self._in_w, termios.FIONREAD, buf)
            space = cap - buf[0]
            if space > 0:
                n = os.write(self._in_w, data[:space])
                self.stats.in_bytes += n
                data = data[n:]
            if data:
                if self._overflow == "drop" and not self._host_stalled(len(data)):
                    self.stats.in_dropped += len(data)
                    self._event({"ev": "input_overflow", "dropped": len(data)}, now_us())
                    return
                time.sleep(0.0002)  # back-pressure: the host waits while the board reads

    def _stdin_loop(self) -> None:
        """UART links: the board's stdin path takes bytes out of the input ring at its own
        per-byte speed (link.in_rate), whatever the baud."""
        pacer = self._stdin_pacer
        while not self._stopping.is_set():
            with self._staged_lock:
                piece = bytes(self._staged[:max(pacer.chunk(), pacer.owed())])
            if not piece:
                pacer.idle()
                time.sleep(0.0002)
                continue
            pacer.wait(len(piece))
            view = memoryview(piece)
            while view and not self._stopping.is_set():
                # Into the pipe and out of _staged in one step under the lock: _buffer_in counts
                # both, and a byte that is in the pipe and still in _staged would count twice
                # (the ring would look fuller than it is and drop bytes the credits allowed).
                with self._staged_lock:
                    try:
                        n = os.write(self._in_w, view)
                    except BlockingIOError:
                        n = 0
                    del self._staged[:n]
                if not n:
                    time.sleep(0.0002)
                    continue
                view = view[n:]
