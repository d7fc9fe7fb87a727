"""The virtual board: real MicroPython behind a pseudo-terminal, with a link that behaves
like the imitated board's USB or UART port. See docs/sim-internals.md for the layout.

    with VirtualBoard("rp2", rx_source="ramp") as board:
        serial.Serial(board.path)  # like any USB-serial board
"""

from __future__ import annotations

import array
import collections
import fcntl
import json
import math
import os
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from i2scli.sim.bus import BusModel, Session
from i2scli.sim.faults import Fault, parse_fault
from i2scli.sim.loopback import Loopback, TxRun, parse_loopback
from i2scli.sim.profiles import Bridge, Profile, get_bridge, get_profile
from i2scli.sim.uart import garble
from i2scli.sim.wire import Capture, Source, parse_source, wire_dtype

RUNTIME = Path(__file__).parent / "runtime"
F_SETPIPE_SZ = 1031
TCGETS2 = 0x802C542A  # Linux: struct termios2, whose c_ospeed is the rate as a plain number
BAUD_POLL_S = 0.005  # the host's baud rate is read from the pty this often (and whenever data moves)
SIM_RUNTIME_HEAP = 512 * 1024
HOST_STALL_MAX_S = 1.0  # input held back at most this long for a board this machine descheduled
CLOCK_PPM_MAX = 50_000  # --clock-ppm: up to 5 % off (a fractional divider's 48.83 kHz for 48 kHz is +17 361)

# Runs the MicroPython unix port inside a small CPython launcher: puts the record channel on
# fds 3 and 4, then hands argv to MicroPython's own main().
LAUNCHER = (
    "import fcntl, os, sys\n"
    "try:\n"  # Linux: the board dies with the model, however the model ends
    "    import ctypes, signal\n"
    "    ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n"
    "    if os.getppid() == 1:\n"
    "        os._exit(1)\n"
    "except Exception:\n"
    "    pass\n"
    "a, b = int(sys.argv[1]), int(sys.argv[2])\n"
    "a2 = fcntl.fcntl(a, fcntl.F_DUPFD, 10)\n"
    "b2 = fcntl.fcntl(b, fcntl.F_DUPFD, 10)\n"
    "os.dup2(a2, 3)\n"
    "os.dup2(b2, 4)\n"
    "for fd in {a, b, a2, b2} - {3, 4}:\n"
    "    os.close(fd)\n"
    "from micropython_unix import main\n"
    "sys.argv = ['micropython'] + sys.argv[3:]\n"
    "sys.exit(main())\n"
)


_SPEEDS = {getattr(termios, n): int(n[1:]) for n in dir(termios)
           if n[:1] == "B" and n[1:].isdigit()}  # termios speed constants -> baud


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


# The board's clock trails now_us() by at most this (runtime/_simport.py LAG_MAX): the part of
# a late wake-up of the board process that the host's scheduler caused.
BOARD_LAG_MAX_US = 250_000


def now_us() -> int:
    """The host's clock in the board's units: MicroPython's ticks_us on the unix port is
    CLOCK_MONOTONIC in µs; the board's own clock trails it by up to BOARD_LAG_MAX_US."""
    return time.monotonic_ns() // 1000


class Pacer:
    """Holds a byte stream to `rate` bytes/s (None: no limit), with a 2 ms burst."""

    def __init__(self, rate: int | None, burst: float = 0.002):
        self.rate = rate
        self.burst = burst  # how far behind its schedule the stream may catch up at once
        self._next = time.monotonic()

    def owed(self) -> int:
        """Bytes whose time has come (within the burst window)."""
        if not self.rate:
            return 65536
        late = min(time.monotonic() - self._next, self.burst)
        return max(0, int(late * self.rate))

    def idle(self) -> None:
        """Nothing to send: no credit builds up beyond the usual 2 ms."""
        self._next = max(self._next, time.monotonic() - 0.002)

    def chunk(self) -> int:
        # 1 ms of bytes: a frame's head arrives about as soon as on a real wire
        return 65536 if not self.rate else max(64, self.rate // 1000)

    def wait(self, n: int) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        if self._next < now - self.burst:
            self._next = now - self.burst
        self._next += n / self.rate
        delay = self._next - now
        if delay > 0.0005:  # shorter waits ride on the 2 ms burst (sleep overshoots them)
            time.sleep(delay)


class SharedPacer(Pacer):
    """A Pacer two threads charge at once: one resource both directions use (a native-USB
    board's full-speed bus, docs/sim.md *Both directions at once*). Each caller's bytes take
    their turn on one schedule, so the directions' rates add up to at most `rate`."""

    def __init__(self, rate: int | None, burst: float = 0.002):
        super().__init__(rate, burst)
        self._lock = threading.Lock()

    def wait(self, n: int) -> None:
        if not self.rate:
            return
        with self._lock:  # reserve under the lock, sleep outside it
            now = time.monotonic()
            if self._next < now - self.burst:
                self._next = now - self.burst
            self._next += n / self.rate
            delay = self._next - now
        if delay > 0.0005:
            time.sleep(delay)


@dataclass
class SessionState:
    """The model's half of one I2S session: ring contents and counters."""

    info: Session
    frame_bytes: int
    tx_ring: bytearray = field(default_factory=bytearray)
    rx_ring: collections.deque = field(default_factory=collections.deque)  # [src, clock, n]
    clocked: int = 0  # frames clocked on the wire so far
    wire_frames: int = 0  # TX: frames of ring data clocked out
    zero_frames: int = 0  # TX: silence clocked (before first write or underrun)
    read_frames: int = 0  # RX: frames handed to the board code
    dropped_frames: int = 0  # RX: frames lost to overflow
    padded_frames: int = 0  # RX: frames the board read that the model had not clocked (a model bug)
    bus: int = -1  # the I2S id
    run: TxRun | None = None  # TX on the loopback's TX bus: what it drove
    mismatched: set = field(default_factory=set)  # RX: TX runs reported as not lockable
    # TX on esp32: the DMA buffers' memory (no ring: _simesp32.py), and one buffer's bytes
    dma: bytearray | None = None
    dma_buf: int = 0

    def queued(self) -> int:
        """TX frames written and not yet clocked, in the order they clock next (esp32: the DMA
        circle from the frame playing, one turn; what is not written yet reads zeros)."""
        if self.dma is None:
            return len(self.tx_ring) // self.frame_bytes
        return len(self.dma) // self.frame_bytes - self.clocked % (self.dma_buf // self.frame_bytes)

    def ahead(self, a: int, b: int) -> bytes:
        """Bytes of frames a..b-1 of those queued()."""
        fb = self.frame_bytes
        if self.dma is None:
            return bytes(self.tx_ring[a * fb:b * fb])
        n = len(self.dma)
        at = (self.clocked + a) * fb % n
        k = (b - a) * fb  # at most one turn
        if at + k <= n:
            return bytes(self.dma[at:at + k])
        return bytes(self.dma[at:]) + bytes(self.dma[:at + k - n])


@dataclass
class Stats:
    in_bytes: int = 0
    in_dropped: int = 0
    host_stall_us: int = 0  # the input waited while this machine kept the board off its CPUs
    out_bytes: int = 0
    out_dropped: int = 0
    ctrl_c: int = 0
    soft_resets: int = 0
    hard_resets: int = 0
    crashes: int = 0
    tx_frames: int = 0
    rx_frames: int = 0
    underruns: int = 0
    underrun_frames: int = 0
    overruns: int = 0
    overrun_frames: int = 0
    # RX frames the model handed over as zeros because it had not clocked them: a model bug,
    # counted so that a gap in a recording can be told from the product's (docs/sim-internals.md)
    rx_padded_frames: int = 0


def codec_dir_pin_id(profile: Profile, pin: object = None):
    """The pad id of the codec's DIR pin (the profile's when `pin` is None; None for "none"):
    any name the board's firmware takes for the pad, so D6 and GPIO_B0_10 are one net on the
    Teensy. ValueError if the board has no such pin."""
    if pin is None:
        pin = profile.dir_pin
    if pin is None or (isinstance(pin, str) and pin.strip().lower() == "none"):
        return None
    pid = profile.pins.pin_id(pin)
    if pid is None:
        raise ValueError(f"board profile {profile.name!r} has no pin {pin!r} for the codec's DIR "
                         f"(names as its firmware takes them: {profile.pins.source})")
    return pid


class VirtualBoard:
    """A virtual MicroPython board reachable through a pseudo-terminal (see module doc)."""

    def __init__(
        self,
        profile: str | Profile | None = None,
        *,
        tx_capture: str | None = None,
        rx_source: str | Source | None = None,
        codec_release: float = 0.0,
        codec_drive: float = 0.0,
        codec_dir_pin: object = None,
        dir_rx_level: int = 0,
        vcd: str | None = None,
        events: str | None = None,
        faults: list[str | Fault] = (),
        fs: str | None = None,
        bridge: str | Bridge | None = None,
        loopback: str | Loopback | None = None,
        clock_ppm: int = 0,
        sim_stats: bool = True,
    ):
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        if not self.profile.link.uart:
            if bridge is not None:
                raise ValueError(f"board profile {self.profile.name!r} has native USB: "
                                 "no USB-UART bridge to choose")
            self.bridge = None
        else:
            self.bridge = bridge if isinstance(bridge, Bridge) else get_bridge(bridge or self.profile.bridge)
        self.source = rx_source if isinstance(rx_source, Source) else parse_source(rx_source)
        if not -CLOCK_PPM_MAX <= int(clock_ppm) <= CLOCK_PPM_MAX:
            raise ValueError(f"clock_ppm must be within ±{CLOCK_PPM_MAX}, not {clock_ppm}")
        self.clock_ppm = int(clock_ppm)  # the I2S clock runs this many ppm off the host's (machine._clocked)
        self.sim_stats = bool(sim_stats)  # False: board code finds no I2S._sim_stats, as on a real board
        self.loopback = loopback if isinstance(loopback, Loopback) or loopback is None \
            else parse_loopback(loopback)
        if self.loopback is not None:
            self.loopback.check_profile(self.profile)
        self._tx_runs: list[TxRun] = []  # TX sessions of the loopback's TX bus, oldest first
        self.capture = Capture(tx_capture) if tx_capture else None
        self.vcd_path = vcd
        self.events_path = events
        self.faults = [f if isinstance(f, Fault) else parse_fault(f) for f in faults]
        dir_pin = codec_dir_pin_id(self.profile, codec_dir_pin)
        self.bus = BusModel(
            dir_pin=dir_pin,
            dir_rx_level=dir_rx_level,
            drive_delay_us=round(codec_drive * 1e6),
            release_delay_us=round(codec_release * 1e6),
            sd_net=set(self.profile.sd_net),
        )
        self._tmp = tempfile.TemporaryDirectory(prefix="i2s-sim-")
        self.fs_dir = Path(fs) if fs else Path(self._tmp.name) / "fs"
        self.fs_dir.mkdir(parents=True, exist_ok=True)
        self.stats = Stats()
        self.events: list[dict] = []
        self.sessions: dict[int, SessionState] = {}
        self.pin_names: dict[int, object] = {}
        self.path: str | None = None
        self.intr = -1  # interrupt char in force on the board (3: 0x03 is Ctrl-C)
        self._link = self.profile.link
        self._in_pacer = Pacer(self._link.in_rate)
        self._out_pacer = Pacer(self._link.out_rate)
        # native USB: one full-speed bus carries both directions' packets (None: a UART, whose
        # two wires are independent)
        self._bus = SharedPacer(self._link.usb_bus) if self._link.usb_bus else None
        # UART links: the board's UART rate, the host's (as pyserial set it on the pty), the
        # bridge's line rate for it; bytes between the wire and the board's stdin path
        self._uart = self._link.uart
        self.board_baud = self._link.power_on_baud
        self.host_baud: int | None = None
        self.line_baud: int | None = None
        self._staged = bytearray()  # arrived over the UART, not yet taken by the stdin path
        self._staged_lock = threading.Lock()
        # the stdin path is hardware-like: a thread of this process woken late (a loaded
        # machine) takes what it owes at once, up to 0.1 s of it, rather than fall behind
        self._stdin_pacer = Pacer(self._link.in_rate, burst=0.1)
        self._in_busy = False  # the host->board thread holds bytes it read from the pty
        self._out_busy = False
        self._overflow = self._link.overflow
        self._in_offset = 0
        self._out_offset = 0
        self._stall_until = 0.0
        self._sigint_quiet_until = 0.0
        self._stopping = threading.Event()
        self._gone = threading.Event()
        self._reboot = False
        self._soft_mode: str | None = None
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.t_origin = now_us()
        self.t_end: int | None = None
        self.gone_reason: str | None = None
        self._log = open(Path(self._tmp.name) / "board-stderr.log", "wb")

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> str:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        # fd 0/1 pipes outlive each interpreter, so input survives a soft reset.
        self._in_r, self._in_w = os.pipe()
        self._out_r, self._out_w = os.pipe()
        try:
            fcntl.fcntl(self._in_w, F_SETPIPE_SZ, max(65536, self._link.in_buffer * 2))
        except OSError:
            pass
        loops = [self._ctrl_loop, self._in_loop, self._out_loop, self._timer_loop]
        if self._uart:
            self._poll_host_baud()
            loops += [self._baud_loop, self._stdin_loop]
        for target in loops:
            t = threading.Thread(target=target, name=target.__name__, daemon=True)
            t.start()
            self._threads.append(t)
        self._event({"ev": "sim_start", "profile": self.profile.name, "path": self.path}, now_us())
        if self.loopback is not None:
            self._event(self.loopback.event(), now_us())
        return self.path

    def __enter__(self) -> VirtualBoard:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Until the board is unplugged (True) or timeout (False)."""
        return self._gone.wait(timeout)

    def stop(self) -> dict:
        """Power the board off, write the outputs, return the summary."""
        if self.t_end is None:
            self.t_end = now_us()
        self._stopping.set()
        self._kill_child()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=2)
        self._close_port()
        self._write_outputs()
        self._log.close()
        self.source.close()
        summary = self.summary()
        self._tmp.cleanup()
        return summary

    def reboot(self) -> None:
        """Hard reset: a fresh interpreter that starts as after power-on."""
        self._reboot = True
        self._kill_child()

    def hang(self, seconds: float) -> None:
        """The board's CPU stops for a while (a long interrupt, a flash write, a debugger halt)
        while its I2S clocks run on: the MicroPython process is stopped, then continued. Its
        clock is the host's, so the bus keeps time and rings over- or underrun as on a board."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self._event({"ev": "hang", "seconds": seconds}, now_us())
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(proc.pid, signal.SIGCONT)

    def unplug(self, reason: str = "unplugged") -> None:
        if self.t_end is None:
            self.t_end = now_us()
        self.gone_reason = reason
        self._event({"ev": "unplug", "reason": reason}, now_us())
        self._stopping.set()
        self._close_port()
        self._kill_child()
        self._gone.set()

    def _close_port(self) -> None:
        with self._lock:
            for name in ("_master", "_slave"):
                fd = getattr(self, name, None)
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                    setattr(self, name, None)

    def _kill_child(self) -> None:
        p = self._proc
        if p and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    # -- the interpreter and its records --------------------------------------------------
    def _spawn(self, start: str, mode: str) -> tuple[int, subprocess.Popen]:
        cfg = {"profile": self.profile.board_dict(), "fs": str(self.fs_dir), "start": start,
               "mode": mode, "channel": True,
               "loopback": self.loopback.board_config() if self.loopback is not None else None,
               "clock_ppm": self.clock_ppm, "sim_stats": self.sim_stats}
        cfg["profile"]["in_buffer"] = self._link.in_buffer
        cfg_path = Path(self._tmp.name) / "config.json"
        cfg_path.write_text(json.dumps(cfg))
        ctrl_r, ctrl_w = os.pipe()
        rx_r, rx_w = os.pipe()
        # room for the simulator's own runtime, which a real board keeps in flash; the board
        # process pins free memory back to the profile's heap with ballast
        heap = f"heapsize={self.profile.heap + SIM_RUNTIME_HEAP}"
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(ctrl_w), str(rx_r), "-X", heap,
             str(RUNTIME / "_board.py"), str(cfg_path)],
            stdin=self._in_r, stdout=self._out_w, stderr=self._log,
            pass_fds=(ctrl_w, rx_r), start_new_session=True, cwd=str(self.fs_dir),
        )
        os.close(ctrl_w)
        os.close(rx_r)
        self._rx_w = rx_w
        return ctrl_r, proc

    def _ctrl_loop(self) -> None:
        start, mode = "power", "friendly"
        quick: list[float] = []
        while not self._stopping.is_set():
            if start == "power" and self.board_baud != self._link.power_on_baud:
                # power-on/hard reset: the REPL UART starts at its default rate again (a soft
                # reset keeps what machine.UART(0) set, as on the real port)
                self.board_baud = self._link.power_on_baud
                self._update_link()
            ctrl_r, self._proc = self._spawn(start, mode)
            self._soft_mode = None
            self.intr = -1
            with os.fdopen(ctrl_r, "rb", buffering=1 << 16) as records:
                try:
                    self._read_records(records)
                except Exception as e:  # a model bug must not take the board down silently
                    self._event({"ev": "model_error", "error": repr(e)}, now_us())
                    self._kill_child()
            code = self._proc.wait()
            os.close(self._rx_w)
            self._end_sessions(now_us())
            if self._stopping.is_set():
                break
            if self._reboot:
                self._reboot = False
                self.stats.hard_resets += 1
                start, mode = "power", "friendly"
            elif self._soft_mode is not None:
                self.stats.soft_resets += 1
                start, mode = "soft", self._soft_mode
            else:
                self.stats.crashes += 1
                self._event({"ev": "crash", "exit_code": code}, now_us())
                start, mode = "power", "friendly"
                quick.append(time.monotonic())
                if len(quick) >= 3 and quick[-1] - quick[-3] < 5:
                    # a board that crashes as it boots: stop, as a real one would sit dead
                    self._event({"ev": "dead", "reason": "crashed three times while booting"}, now_us())
                    self.gone_reason = "board crashed while booting (see its log)"
                    self._gone.set()
                    return
                self._stopping.wait(0.5)

    def _read_records(self, f) -> None:
        while True:
            head = f.read(4)
            if len(head) < 4:
                return
            kind, n = head[0], head[1] | head[2] << 8 | head[3] << 16
            payload = f.read(n)
            if len(payload) < n:
                return
            if kind == 0x54:  # T
                s = self.sessions.get(payload[0])
                if s is not None:
                    s.tx_ring += payload[1:]
            elif kind == 0x43:  # C
                self._on_clock(*struct.unpack("<BII", payload))
            elif kind == 0x57:  # W
                s = self.sessions.get(payload[0])
                if s is not None and s.dma is not None:
                    at = struct.unpack_from("<I", payload, 1)[0]
                    s.dma[at:at + n - 5] = payload[5:]
            elif kind == 0x44:  # D
                self._on_dma_play(*struct.unpack("<BII", payload))
            elif kind == 0x52:  # R
                self._on_rx(*struct.unpack("<BIII", payload))
            elif kind == 0x50:  # P
                idx, value, t = struct.unpack("<HBq", payload)
                name = self.pin_names.get(idx, idx)
                self.bus.pin_value(name, value, t)
                self._event({"ev": "pin_value", "name": name, "value": value}, t)
            elif kind == 0x49:  # I
                self.intr = struct.unpack("<i", payload)[0]
            elif kind == 0x4A:  # J
                self._on_event(json.loads(payload))

    def _on_event(self, e: dict) -> None:
        t = e.pop("t", None) or now_us()
        ev = e.get("ev")
        if ev == "boot":
            self._in_pacer.rate = self._link.in_rate
            self._overflow = self._link.overflow
            if self._uart:
                self._update_link()
        elif ev == "soft_reset":
            self._soft_mode = e.get("mode", "friendly")
        elif ev == "uart":
            self._on_uart(e, t)
        elif ev == "dupterm_in":
            self._dupterm_in(int(e["byte"]))
        elif ev == "vcp":
            self._in_pacer.rate = self._link.vcp_in_rate or self._link.in_rate
            self._overflow = "block" if e.get("flow") == "rts" else "drop"
        elif ev == "pin":
            self.pin_names[e["idx"]] = e["name"]
            self.bus.pin_mode(e["name"], e.get("mode"), e.get("value"), t)
        elif ev == "i2s_init":
            channels = 2 if e["format"] == "stereo" else 1
            info = Session(e["sid"], e["mode"], e["sd"], e["rate"], e["bits"], channels, t)
            s = self.sessions[e["sid"]] = SessionState(info, e["bits"] // 8 * channels, bus=e.get("id", -1))
            if e.get("dma_bufs"):
                s.dma = bytearray(e["dma_bufs"] * e["dma_buf_bytes"])
                s.dma_buf = e["dma_buf_bytes"]
            self.bus.i2s_init(info)
            lb = self.loopback
            if lb is not None and s.bus == lb.tx and e["mode"] == "tx":
                s.run = TxRun(e["sid"], t, e["rate"], e["bits"], channels)
                s.run.live = s
                self._tx_runs.append(s.run)
            elif lb is not None and s.bus == lb.rx and e["mode"] == "rx":
                self._event({"ev": "loopback_rx", "sid": e["sid"], "rate": e["rate"], "bits": e["bits"],
                             "delay_frames": lb.delay_frames(e["rate"])}, t)
        elif ev == "i2s_deinit":
            self._end_session(e["sid"], t, e)
        self._event(e, t)

    def _on_clock(self, sid: int, ring_frames: int, zero_frames: int) -> None:
        s = self.sessions.get(sid)
        if s is None:
            return
        n = ring_frames * s.frame_bytes
        data, s.tx_ring[:n] = bytes(s.tx_ring[:n]), b""
        self._clocked(s, data, zero_frames)

    def _on_dma_play(self, sid: int, at: int, frames: int) -> None:
        s = self.sessions.get(sid)
        if s is None or s.dma is None:
            return
        n = frames * s.frame_bytes
        data, s.dma[at:at + n] = bytes(s.dma[at:at + n]), bytes(n)  # played, then cleared
        self._clocked(s, data, 0)

    def _clocked(self, s: SessionState, data: bytes, zero_frames: int) -> None:
        """TX session s put `data` then `zero_frames` of silence on SD."""
        info = s.info
        ring_frames = len(data) // s.frame_bytes
        if self.capture and data:
            self.capture.write(data, info.bits, info.channels, info.rate)
        if self.capture and zero_frames:
            self.capture.zeros(zero_frames, info.bits, info.rate)
        if s.run is not None:
            s.run.clocked(data, zero_frames)
        s.wire_frames += ring_frames
        s.zero_frames += zero_frames
        s.clocked += ring_frames + zero_frames

    def _on_rx(self, sid: int, fill: int, drop: int, nbytes: int) -> None:
        s = self.sessions.get(sid)
        if s is not None:
            if fill:
                s.rx_ring.append([self._src_pos, s.clocked, fill])
                self._src_pos += fill
                s.clocked += fill
            if drop:
                self._src_pos += drop
                s.clocked += drop
                s.dropped_frames += drop
        out = self._render_rx(s, nbytes // s.frame_bytes if s else 0) if s else b""
        if len(out) < nbytes:
            short = (nbytes - len(out)) // s.frame_bytes if s else 0
            if s is not None:
                s.padded_frames += short
            self.stats.rx_padded_frames += short
            self._event({"ev": "rx_padded", "sid": sid, "frames": short}, now_us())
            out = out.ljust(nbytes, b"\0")
        view = memoryview(out)
        while view:
            view = view[os.write(self._rx_w, view):]

    _src_pos = 0  # the microphone's position: one frame per RX frame clocked, ever

    def _render_rx(self, s: SessionState, frames: int) -> bytes:
        info, parts = s.info, []
        while frames > 0 and s.rx_ring:
            seg = s.rx_ring[0]
            n = min(frames, seg[2])
            if self.loopback is not None and s.bus == self.loopback.rx:
                samples = self._loopback_frames(s, seg[0], seg[1], n)
            else:
                samples = self.source.frames(seg[0], n, info.rate, info.bits, info.channels)
            times = info.t0 + (seg[1] + np.arange(n, dtype=np.int64)) * 1_000_000 // info.rate
            state = self.bus.rx_states(times)
            if state.any():
                samples = samples.copy()
                samples[state == 1] = 0  # nobody drives SD: it reads low
                samples[state == 2] = -1  # two drivers fight: garbage
            parts.append(np.ascontiguousarray(samples, wire_dtype(info.bits)).tobytes())
            seg[0] += n
            seg[1] += n
            seg[2] -= n
            if not seg[2]:
                s.rx_ring.popleft()
            frames -= n
            s.read_frames += n
        if self.loopback is not None and s.bus == self.loopback.rx:
            self._trim_runs()
        return b"".join(parts)

    def _loopback_frames(self, s: SessionState, pos: int, clock: int, n: int) -> np.ndarray:
        """RX frames clock..clock+n-1 of session s (RX stream position pos) on the loopback:
        frame j reads TX frame floor((t0_rx - t0_tx)·rate/10⁶) + j - D of the TX session that
        was clocking then, transformed by the analog path."""
        lb, info = self.loopback, s.info
        rate = info.rate
        d = lb.delay_frames(rate)
        x = np.zeros((n, 2), np.int64)
        for run in self._tx_runs:
            if run.rate == rate and run.bits == info.bits:
                run.fill(x, (info.t0 - run.t0) * rate // 1_000_000 + clock - d)
                continue
            # Another rate or slot width: the receiver cannot lock to it and reads silence.
            a = info.t0 + (clock - d) * 1e6 / rate
            b = info.t0 + (clock + n - d) * 1e6 / rate
            end = math.inf if run.live is not None else run.t0 + run.total * 1e6 / run.rate
            if run not in s.mismatched and b > run.t0 and a < end:
                s.mismatched.add(run)
                self._event({"ev": "loopback_mismatch", "rx_sid": info.sid, "tx_sid": run.sid,
                             "rx_rate": rate, "tx_rate": run.rate, "rx_bits": info.bits,
                             "tx_bits": run.bits}, max(int(a), run.t0))
        times = info.t0 + (clock + np.arange(n, dtype=np.float64)) * (1e6 / rate)
        y = lb.transform(x, info.bits, pos, times)
        return y[:, :info.channels].astype(wire_dtype(info.bits))

    def _trim_runs(self) -> None:
        """Forget TX frames no RX frame can read any more: before the oldest RX frame not yet
        handed to board code (or now, for sessions still to come), less the delay."""
        lb = self.loopback
        keep = now_us()
        for s in self.sessions.values():
            if s.bus == lb.rx and s.info.mode == "rx":
                j = s.rx_ring[0][1] if s.rx_ring else s.clocked
                keep = min(keep, s.info.t0 + j * 1_000_000 // s.info.rate)
        # margin for the instants' rounding, and for the board's clock, which trails ours by up
        # to LAG_MAX µs after a wake-up this host delayed (runtime/_simport.py)
        keep -= 1000 + BOARD_LAG_MAX_US
        for run in list(self._tx_runs):
            run.trim((keep - run.t0) * run.rate // 1_000_000 - lb.delay_frames(run.rate) - 2)
            if run.live is None and not run.chunks:
                self._tx_runs.remove(run)

    def _end_session(self, sid: int, t: int, report: dict | None = None) -> None:
        s = self.sessions.pop(sid, None)
        if s is None:
            return
        self.bus.i2s_deinit(sid, t)
        if s.run is not None:
            s.run.live = None  # what was left in the ring never reached the wire
        st = self.stats
        if s.info.mode == "tx":
            st.tx_frames += s.wire_frames
        else:
            st.rx_frames += s.read_frames
        if report:
            st.underruns += report.get("underruns", 0)
            st.underrun_frames += report.get("underrun_frames", 0)
            st.overruns += report.get("overruns", 0)
            st.overrun_frames += report.get("overrun_frames", 0)

    def _end_sessions(self, t: int) -> None:
        for sid in list(self.sessions):
            self._end_session(sid, t)

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

    # -- the link ---------------------------------------------------------------------------
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

    def _stalled(self) -> None:
        while time.monotonic() < self._stall_until and not self._stopping.is_set():
            time.sleep(0.001)

    def _in_loop(self) -> None:
        import select

        while not self._stopping.is_set():
            fd = self._master
            if fd is None:
                return
            try:
                r, _, _ = select.select([fd], [], [], 0.1)
                if not r:
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

    def _fault_at(self, direction: str, offset: int, n: int) -> Fault | None:
        for f in self.faults:
            if not f.fired and f.offset is not None and f.direction == direction \
                    and offset <= f.offset < offset + n:
                return f
        return None

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
        while data:
            if self.intr == 3 and 3 in data:
                i = data.index(3)
                self._pace_in(data[:i])
                self._ctrl_c()
                data = data[i + 1:]
            else:
                self._pace_in(data)
                return

    def _deliver(self, data: bytes) -> None:
        """UART links: bytes as the board's UART got them: Ctrl-C, then the input ring."""
        while data:
            if self.intr == 3 and 3 in data:
                i = data.index(3)
                self._buffer_in(data[:i])
                self._ctrl_c()
                data = data[i + 1:]
            else:
                self._buffer_in(data)
                return

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
        import select

        view = memoryview(data)
        while view and not self._stopping.is_set():
            fd = self._master
            if fd is None:
                return
            try:
                _, w, _ = select.select([], [fd], [], self._link.stall_drop_s)
                if not w:  # nobody reads: the board's USB stack gives up on this data
                    self.stats.out_dropped += len(view)
                    return
                n = os.write(fd, view)
            except BlockingIOError:
                continue
            except (OSError, ValueError, TypeError):
                return
            self.stats.out_bytes += n
            view = view[n:]

    def _fire(self, f: Fault) -> None:
        f.fired = True
        if f.kind == "stall":
            self._stall_until = time.monotonic() + f.duration
        elif f.kind == "hang":
            threading.Thread(target=self.hang, args=(f.duration,), daemon=True).start()
        elif f.kind == "reboot":
            self.reboot()
        elif f.kind == "unplug":
            threading.Thread(target=self.unplug, args=(f"fault {f}",), daemon=True).start()

    def _timer_loop(self) -> None:
        t0 = time.monotonic()
        pending = [f for f in self.faults if f.at is not None and f.offset is None]
        for f in sorted(pending, key=lambda f: f.at):
            if self._stopping.wait(max(0.0, t0 + f.at - time.monotonic())):
                return
            self._event({"ev": "fault", "fault": str(f)}, now_us())
            self._fire(f)

    # -- outputs -----------------------------------------------------------------------------
    def _event(self, e: dict, t: int) -> None:
        e = dict(e)
        e["t"] = round((t - self.t_origin) / 1e6, 6)
        e["t_us"] = t
        self.events.append(e)

    def conflicts(self) -> list[tuple[int, int]]:
        return self.bus.conflicts(self.t_end or now_us())

    def _write_outputs(self) -> None:
        if self.capture:
            self.capture.close()
        t_end = self.t_end or now_us()
        if self.events_path:
            derived = [{"ev": "bus_conflict", "start_us": a, "end_us": b, "t_us": a}
                       for a, b in self.bus.conflicts(t_end)]
            derived += [{"ev": "clock_gap", "start_us": a, "end_us": b, "gap_us": b - a, "t_us": a}
                        for a, b in self.bus.clock_gaps()]
            for d in derived:
                d["t"] = round((d["t_us"] - self.t_origin) / 1e6, 6)
            with open(self.events_path, "w") as f:
                for e in sorted(self.events + derived, key=lambda e: e["t_us"]):
                    f.write(json.dumps(e) + "\n")
        if self.vcd_path:
            self.bus.write_vcd(self.vcd_path, self.t_origin, t_end)

    def summary(self) -> dict:
        t_end = self.t_end or now_us()
        st = self.stats
        return {
            "profile": self.profile.name,
            "path": self.path,
            "seconds": round((t_end - self.t_origin) / 1e6, 3),
            **st.__dict__,
            "conflicts": len(self.bus.conflicts(t_end)),
            "clock_gaps": [b - a for a, b in self.bus.clock_gaps()],
            "faults": [str(f) for f in self.faults if f.fired],
            "gone": self.gone_reason,
        }

    def summary_line(self) -> str:
        s = self.summary()
        gaps = s["clock_gaps"]
        line = (
            f"sim: {s['profile']} board ran {s['seconds']:.1f} s; "
            f"in {s['in_bytes']} B ({s['in_dropped']} dropped), out {s['out_bytes']} B "
            f"({s['out_dropped']} dropped); TX {s['tx_frames']} frames "
            f"({s['underruns']} underruns), RX {s['rx_frames']} frames ({s['overruns']} overruns); "
            f"{s['conflicts']} bus conflicts, {len(gaps)} clock gaps"
        )
        if gaps:
            line += f" (longest {max(gaps) / 1000:.2f} ms)"
        if s["rx_padded_frames"]:
            line += f"; MODEL BUG: {s['rx_padded_frames']} RX frames read that were never clocked"
        if s["gone"]:
            line += f"; {s['gone']}"
        return line
