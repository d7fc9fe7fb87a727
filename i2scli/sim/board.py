"""The virtual board: real MicroPython behind a pseudo-terminal, with a link that behaves
like the imitated board's USB or UART port. See docs/sim-internals.md for the layout.

    with VirtualBoard("rp2", rx_source="ramp") as board:
        serial.Serial(board.path)  # like any USB-serial board
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from i2scli.sim.bus import BusModel
from i2scli.sim.faults import Fault, LinkFaults, parse_fault
from i2scli.sim.link_in import LinkIn
from i2scli.sim.link_out import LinkOut
from i2scli.sim.link_uart import UartBaud
from i2scli.sim.loopback import Loopback, TxRun, parse_loopback
from i2scli.sim.pacing import Pacer, SharedPacer, now_us
from i2scli.sim.profiles import Bridge, Profile, get_bridge, get_profile
from i2scli.sim.pty import close_port, raw_pty
from i2scli.sim.report import Report, Stats, wind_up
from i2scli.sim.sessions import I2SSessions, SessionState
from i2scli.sim.wire import Capture, Source, parse_source

RUNTIME = Path(__file__).parent / "runtime"
F_SETPIPE_SZ = 1031
SIM_RUNTIME_HEAP = 512 * 1024
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


class VirtualBoard(LinkIn, LinkOut, UartBaud, LinkFaults, I2SSessions, Report):
    """A virtual MicroPython board reachable through a pseudo-terminal (see module doc). This
    class runs the board process and reads its records; the link's directions, its baud
    rates and faults, the I2S sessions and the report are the bases' (link_in, link_out,
    link_uart, faults, sessions, report)."""

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
        self._master, self._slave, self.path = raw_pty()
        os.set_blocking(self._master, False)
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
        return wind_up(self)

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
            close_port(self)

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
            self._on_i2s_init(e, t)
        elif ev == "i2s_deinit":
            self._end_session(e["sid"], t, e)
        self._event(e, t)


    # -- the link ---------------------------------------------------------------------------
    # -- outputs -----------------------------------------------------------------------------
