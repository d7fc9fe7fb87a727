"""The firmware board: the real MicroPython rp2 firmware (RPI_PICO) in the RP2040 emulator rp2040js,
behind a pseudo-terminal like the virtual board (docs/sim.md, *The firmware board*).

The emulator side is rp2fw/harness.js (Node); this module finds what it needs (node, the pinned
rp2040js, a firmware image and the RP2040 bootrom), bridges its USB CDC to a pty, turns the TX pins it
decodes into a WAV and hands it the RX source.

    board = FirmwareBoard(tx_capture="tx.wav")
    path = board.start()  # a pty: mpremote, pyserial and i2s open it like /dev/ttyACM0
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from i2scli.sim.pty import close_port, master_ready, raw_pty
from i2scli.sim.report import wind_up

PROFILE = "rp2-firmware"
RP2040JS_VERSION = "1.4.1"  # pinned in rp2fw/package.json and package-lock.json
HARNESS = Path(__file__).parent / "rp2fw"
FIRMWARE_NAMES = ("firmware.uf2", "firmware.bin", "firmware.elf")
BOOTROM_NAME = "bootrom-b1.bin"
BOOTROM_SIZE = 16384
USB_ID = (0x2E8A, 0x0005)  # MicroPython's rp2 boards: Raspberry Pi VID, MicroPython PID
# The `i2s sim` options the firmware board honours; every other one given is refused in one line.
HONOURED = {"profile", "tx_capture", "rx_source", "loopback", "events", "exit_with_stdin", "faults", "fault"}
HOST_STALL_DROP_S = 0.5  # board output the host has not read for this long is dropped


class FirmwareUnavailable(Exception):
    """What the firmware board needs is missing: one line saying what and how to get it."""


def cache_dir() -> Path:
    """Where the firmware board's parts live: the user's cache directory, `i2s/`."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("i2s"))


def firmware_dir() -> Path:
    return cache_dir() / "rp2-firmware"


def find_firmware() -> Path:
    """$I2S_RP2_FIRMWARE (a .uf2, .bin or .elf), else the first of firmware.uf2/.bin/.elf in the cache."""
    given = os.environ.get("I2S_RP2_FIRMWARE")
    if given:
        p = Path(given)
        if not p.is_file():
            raise FirmwareUnavailable(f"I2S_RP2_FIRMWARE={given!r} is not a file")
        return p
    for name in FIRMWARE_NAMES:
        p = firmware_dir() / name
        if p.is_file():
            return p
    raise FirmwareUnavailable(
        f"no rp2 firmware: put MicroPython's RPI_PICO .uf2 (micropython.org/download/RPI_PICO) at "
        f"{firmware_dir() / 'firmware.uf2'} or name it in I2S_RP2_FIRMWARE")


def find_bootrom() -> Path:
    """$I2S_RP2_BOOTROM, else bootrom-b1.bin in the cache: the RP2040's 16 kB mask ROM (B1)."""
    given = os.environ.get("I2S_RP2_BOOTROM")
    p = Path(given) if given else firmware_dir() / BOOTROM_NAME
    if not p.is_file():
        raise FirmwareUnavailable(
            f"no RP2040 bootrom: put the 16 kB B1 image (raspberrypi/pico-bootrom, as rp2040js's demo/ "
            f"carries it) at {firmware_dir() / BOOTROM_NAME} or name it in I2S_RP2_BOOTROM")
    if p.stat().st_size != BOOTROM_SIZE:
        raise FirmwareUnavailable(f"RP2040 bootrom {str(p)!r} is {p.stat().st_size} bytes, not {BOOTROM_SIZE}")
    return p


def find_node() -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        raise FirmwareUnavailable("the firmware board needs Node.js (`node`): install it (Debian: apt install nodejs)")
    return node


def modules_dir(install: bool = True) -> Path:
    """node_modules holding the pinned rp2040js; `npm ci` installs it there on first use."""
    home = cache_dir() / f"rp2040js-{RP2040JS_VERSION}"
    mods = home / "node_modules"
    if (mods / "rp2040js" / "package.json").is_file():
        return mods
    if not install:
        raise FirmwareUnavailable(f"rp2040js {RP2040JS_VERSION} is not installed in {home}")
    npm = shutil.which("npm")
    if not npm:
        raise FirmwareUnavailable(
            f"rp2040js {RP2040JS_VERSION} is not installed and there is no `npm` to install it "
            "(Debian: apt install npm)")
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two boards starting at once install it once
        if not (mods / "rp2040js" / "package.json").is_file():
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(HARNESS / name, home / name)
            r = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=home,
                               capture_output=True, text=True, timeout=300)
            if r.returncode or not (mods / "rp2040js" / "package.json").is_file():
                why = (r.stderr.strip().splitlines() or ["npm ci failed"])[-1]
                raise FirmwareUnavailable(f"could not install rp2040js {RP2040JS_VERSION} with npm: {why}")
    return mods


def check_ready(install: bool = True) -> dict:
    """Everything the firmware board needs, or FirmwareUnavailable saying what is missing."""
    node = find_node()
    modules = str(modules_dir(install))
    return {"node": node, "modules": modules, "firmware": str(find_firmware()), "bootrom": str(find_bootrom())}


def stalls(faults) -> list[dict]:
    """The harness's stall faults (the link carries nothing either way for a while, in emulated
    time); ValueError for a fault the firmware board cannot inject."""
    out = []
    for f in faults:
        if f.kind != "stall":
            raise ValueError(f"the rp2-firmware board injects only stall faults, not {f.kind!r}")
        if f.offset is not None and f.direction != "in":
            raise ValueError("the rp2-firmware board counts a stall's offset in host-to-board bytes only")
        where = {"offset": f.offset} if f.offset is not None else {"at_ns": round(f.at * 1e9)}
        out.append({**where, "for_ns": round(f.duration * 1e9)})
    return out


def now_us() -> int:
    return time.monotonic_ns() // 1000


class FirmwareBoard:
    """One firmware board: the emulator in a Node process, its USB CDC behind a pty."""

    def __init__(self, *, tx_capture: str | None = None, rx_source: str | None = None, loopback=None,
                 events: str | None = None, faults=()) -> None:
        from i2scli.sim.wire import FileSource, Ramp, Silence, Sine, parse_source

        self.tx_capture = tx_capture
        self.events_path = events
        self.loopback = loopback
        source = parse_source(rx_source) if rx_source is None or isinstance(rx_source, str) else rx_source
        self.source = source
        self._tmp = tempfile.TemporaryDirectory(prefix="i2s-rp2fw-")
        self._cfg: dict = {"tx_raw": str(Path(self._tmp.name) / "tx.raw") if tx_capture else None,
                           "loopback": loopback is not None}
        if isinstance(source, Ramp):
            self._cfg["rx_ramp"] = True
        elif isinstance(source, Sine):
            self._cfg["rx_sine"] = {"freq": source.freq, "amplitude": source.amplitude}
        elif isinstance(source, FileSource):
            info_frames = source._file.frames
            raw = Path(self._tmp.name) / "rx.raw"
            raw.write_bytes(np.ascontiguousarray(source.frames(0, info_frames, 0, 32, 2), "<i4").tobytes())
            self._cfg["rx_raw"] = str(raw)
        elif not isinstance(source, Silence):
            raise ValueError(f"the firmware board cannot use RX source {rx_source!r}")
        self._cfg["stalls"] = stalls(faults)
        self.path: str | None = None
        self._proc: subprocess.Popen | None = None
        self._gone = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._events: list[dict] = []
        self._lock = threading.Lock()
        self.t_origin = now_us()
        self.t_end: int | None = None
        self.gone_reason: str | None = None
        self.stats = {"in_bytes": 0, "out_bytes": 0, "out_dropped": 0, "tx_frames": 0, "rx_frames": 0,
                      "emulated_s": 0.0}
        self._tx_formats: list[dict] = []

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> str:
        ready = check_ready()
        self._master, self._slave, self.path = raw_pty()
        os.set_blocking(self._master, False)
        ev_r, ev_w = os.pipe()
        cfg = {**self._cfg, "firmware": ready["firmware"], "bootrom": ready["bootrom"],
               "modules": ready["modules"], "events_fd": ev_w}
        self._log = open(Path(self._tmp.name) / "harness-stderr.log", "wb")
        node_args = os.environ.get("I2S_RP2_NODE_ARGS", "").split()  # e.g. --cpu-prof, to see where time goes
        self._proc = subprocess.Popen([ready["node"], *node_args, str(HARNESS / "harness.js"), json.dumps(cfg)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                      pass_fds=[ev_w], start_new_session=True)
        os.close(ev_w)
        self._event({"ev": "sim_start", "profile": PROFILE, "path": self.path, "firmware": ready["firmware"]})
        for target, args in ((self._host_to_board, ()), (self._board_to_host, ()),
                             (self._read_events, (os.fdopen(ev_r, "rb"),))):
            t = threading.Thread(target=target, args=args, name=target.__name__, daemon=True)
            t.start()
            self._threads.append(t)
        return self.path

    def wait(self, timeout: float | None = None) -> bool:
        """Until the emulator is gone (True) or timeout (False)."""
        return self._gone.wait(timeout)

    def sync_input(self, limit: float = 0.5) -> None:
        """A baud change: a USB CDC port has no baud, nothing to wait for."""

    def stop(self) -> dict:
        if self.t_end is None:
            self.t_end = now_us()
        self._stopping.set()
        p = self._proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)  # the harness writes what it holds and exits
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for t in self._threads:
            t.join(timeout=2)
        return wind_up(self)

    def _close_port(self) -> None:
        close_port(self)

    # -- the link: pty <-> the emulated USB CDC --------------------------------------------
    def _host_to_board(self) -> None:
        stdin = self._proc.stdin
        while not self._stopping.is_set():
            try:
                fd = master_ready(self)
                if fd is None:
                    return
                data = os.read(fd, 4096) if fd >= 0 else b""
            except BlockingIOError:
                continue
            except OSError:
                return
            if not data:
                continue
            try:
                stdin.write(data)  # blocks while the emulator holds enough: the host's writes back up
                stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                return

    def _board_to_host(self) -> None:
        # A host that does not read holds the board's output up to HOST_STALL_DROP_S, then it is dropped
        # (counted) until the host reads again: the emulated USB host takes every IN packet at once, and
        # a Node process blocked on a full pipe would stop the board's clock with it.
        out = self._proc.stdout
        stalled_since: float | None = None
        while True:
            data = out.read1(65536)
            if not data:
                break
            view = memoryview(data)
            while view and not self._stopping.is_set():
                fd = self._master
                if fd is None:
                    return
                try:
                    n = os.write(fd, view)
                    view = view[n:]
                    stalled_since = None
                except BlockingIOError:
                    now = time.monotonic()
                    stalled_since = stalled_since or now
                    if now - stalled_since >= HOST_STALL_DROP_S:
                        self.stats["out_dropped"] += len(view)
                        break
                    select.select([], [fd], [], 0.05)
                except OSError:
                    return
        if not self._stopping.is_set():
            self.gone_reason = "the emulator stopped" + self._last_words()
            if self.t_end is None:
                self.t_end = now_us()
            self._gone.set()

    def _last_words(self) -> str:
        """The last line the emulator wrote on stderr (an exception from rp2040js, say), or ''."""
        try:
            self._proc.wait(timeout=2)
            self._log.flush()
            lines = (Path(self._tmp.name) / "harness-stderr.log").read_text(errors="replace").split("\n")
        except (OSError, subprocess.TimeoutExpired):
            return ""
        lines = [line.strip() for line in lines if line.strip()]
        return f": {lines[-1][:200]}" if lines else ""

    def _read_events(self, f) -> None:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            self._on_event(e)
        f.close()

    def _on_event(self, e: dict) -> None:
        ev = e.get("ev")
        if ev == "tx_start":
            self._tx_formats.append(e)
        elif ev == "tx_end":
            self.stats["tx_frames"] += e["frames"]
        elif ev == "rx_end":
            self.stats["rx_frames"] += e["frames"]
        elif ev == "stop":
            self.stats["in_bytes"] = e["in_bytes"]
            self.stats["out_bytes"] = e["out_bytes"]
            self.stats["emulated_s"] = round(e["emulated_s"], 3)
        elif ev == "clock":
            self.stats["emulated_s"] = round(e["emulated_s"], 3)
        self._event(e)

    def _event(self, e: dict) -> None:
        e = {**e, "t": now_us() - self.t_origin}
        with self._lock:
            self._events.append(e)

    # -- outputs ----------------------------------------------------------------------------
    def _write_outputs(self) -> None:
        if self.tx_capture:
            from i2scli.sim.wire import Capture

            cap = Capture(self.tx_capture)
            raw = Path(self._cfg["tx_raw"])
            if raw.is_file() and raw.stat().st_size >= 8 and self._tx_formats:
                fmt = self._tx_formats[0]
                slots = np.fromfile(raw, "<i4", count=raw.stat().st_size // 8 * 2).reshape(-1, 2)
                if fmt["bits"] == 16:
                    slots = (slots >> 16).astype(np.int16)
                cap.write(slots, fmt["bits"], 2, fmt["rate"])
            cap.close()
        if self.events_path:
            with open(self.events_path, "w") as f, self._lock:
                for e in self._events:
                    f.write(json.dumps(e) + "\n")

    def summary(self) -> dict:
        t_end = self.t_end or now_us()
        return {"profile": PROFILE, "path": self.path, "seconds": round((t_end - self.t_origin) / 1e6, 3),
                **self.stats, "gone": self.gone_reason}

    def summary_line(self) -> str:
        s = self.summary()
        line = (f"sim: {PROFILE} board ran {s['seconds']:.1f} s ({s['emulated_s']:.1f} s emulated); "
                f"in {s['in_bytes']} B, out {s['out_bytes']} B ({s['out_dropped']} dropped: host not reading); "
                f"TX {s['tx_frames']} frames on the pins, RX {s['rx_frames']} frames driven")
        if s["gone"]:
            line += f"; {s['gone']}"
        return line


def main() -> int:
    """`python -m i2scli.sim.firmware_board`: install the pinned rp2040js and say what is missing."""
    try:
        ready = check_ready()
    except FirmwareUnavailable as e:
        print(f"rp2-firmware: {e}")
        return 4
    print(f"rp2-firmware: ready ({ready['firmware']}, rp2040js {RP2040JS_VERSION} in {ready['modules']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
