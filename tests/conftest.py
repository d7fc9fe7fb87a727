"""The suite's one module of shared helpers: fixtures (virtual boards started the way users start
them, real clients on them), the command line as a subprocess, and the markers.

The tests sit by kind: tests/unit needs no board, tests/e2e starts virtual boards (the MicroPython
unix port behind a pty), tests/firmware runs a real MicroPython firmware in an emulator (qemu, the
RP2040 emulator). A test is marked `e2e` or `firmware` by its folder; a test elsewhere that starts a
board says so with the marker itself. `slow` marks what a quick run (-m "not slow") leaves out.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # the checkout
TESTS = ROOT / "tests"
BIN = Path(sys.executable).parent
I2S = [sys.executable, "-m", "i2scli"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: took 1 s or more on a loaded 2-core machine (--durations); -m 'not slow' is the quick run"
    )
    config.addinivalue_line(
        "markers", "e2e: starts a virtual board (tests/e2e marks all of its tests); -m 'not e2e' leaves it out"
    )
    config.addinivalue_line(
        "markers", "firmware: runs a real MicroPython firmware in an emulator (tests/firmware); -m 'not firmware' skips"
    )


KINDS = {"e2e": pytest.mark.e2e, "firmware": pytest.mark.firmware}  # folder under tests/ -> marker


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test carries the marker of the folder it sits in, so -m selects by kind."""
    for item in items:
        path = Path(str(item.path))
        if TESTS in path.parents:
            kind = path.relative_to(TESTS).parts[0]
            if kind in KINDS:
                item.add_marker(KINDS[kind])


def i2s(*args, timeout=60, check=None) -> subprocess.CompletedProcess:
    """Run the real command line; never a traceback, and the exit code `check` if given."""
    r = subprocess.run([*I2S, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV)
    assert "Traceback" not in r.stderr, r.stderr
    if check is not None:
        assert r.returncode == check, (r.returncode, r.stdout, r.stderr)
    return r


@dataclass
class SimProcess:
    """`i2s sim` running in a subprocess, as a user runs it."""

    proc: subprocess.Popen
    path: str
    out_dir: Path
    summary: str = ""
    files: dict = field(default_factory=dict)

    def stop(self, sig=signal.SIGINT) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=20)
        self.summary = err
        assert self.proc.returncode == 0, err
        return err

    def events(self) -> list[dict]:
        return [json.loads(line) for line in Path(self.files["events"]).read_text().splitlines()]


@pytest.fixture(autouse=True)
def _own_probe_cache(tmp_path, monkeypatch):
    """Each test remembers link probes in its own cache: none leaks into another test."""
    cache = str(tmp_path / "i2s-cache")
    monkeypatch.setenv("I2S_CACHE_DIR", cache)
    monkeypatch.setitem(ENV, "I2S_CACHE_DIR", cache)


@pytest.fixture(autouse=True)
def _sigpipe_stays_ignored():
    """vcdvcd (the VCD parser the tests use) resets SIGPIPE to its default when imported; a
    later broken socket in a test's bridge thread would then kill pytest itself."""
    yield
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)


@pytest.fixture
def sim(tmp_path):
    started: list[SimProcess] = []

    def start(profile="rp2", *args, capture=True, events=True, vcd=False) -> SimProcess:
        out = tmp_path / f"sim{len(started)}"
        out.mkdir()
        files = {}
        cmd = [sys.executable, "-m", "i2scli", "sim", "--profile", profile, *args]
        if capture:
            files["tx"] = str(out / "tx.wav")
            cmd += ["--tx-capture", files["tx"]]
        if events:
            files["events"] = str(out / "events.jsonl")
            cmd += ["--events", files["events"]]
        if vcd:
            files["vcd"] = str(out / "bus.vcd")
            cmd += ["--vcd", files["vcd"]]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), proc.stderr.read()
        s = SimProcess(proc, path, out, files=files)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.communicate()


@pytest.fixture
def small_disk(tmp_path):
    """An empty directory on a real 64 kB filesystem (a tmpfs), for recordings that fill it.

    Mounting needs privileges (root, as CI runs on Linux); where there are none the test is
    skipped with the reason. The mount goes away after the test, also when it fails.
    """
    where = tmp_path / "small-disk"
    where.mkdir()
    if sys.platform != "linux":
        pytest.skip("a small tmpfs for the full-disk case needs Linux")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=1777", "i2s-test", str(where)],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot mount a small tmpfs for the full-disk case: {e}")
    if r.returncode:
        why = (r.stderr.strip().splitlines() or ["mount failed"])[0]
        pytest.skip(f"cannot mount a small tmpfs for the full-disk case (needs mount privileges): {why}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=10)


def mpremote(*args, timeout=30, check=True) -> subprocess.CompletedProcess:
    """The real mpremote command line."""
    r = subprocess.run([str(BIN / "mpremote"), *args], capture_output=True, timeout=timeout,
                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if check:
        assert r.returncode == 0, (r.stdout, r.stderr)
    return r


@pytest.fixture
def transport():
    """mpremote's serial transport (the library), opened on a port or URL; closed after."""
    opened = []

    def open_(port):
        from mpremote.transport_serial import SerialTransport

        import i2scli.sim  # noqa: F401  (sim:// URLs)

        t = SerialTransport(port, baudrate=115200)
        opened.append(t)
        return t

    yield open_
    for t in opened:
        try:
            t.close()
        except Exception:
            pass


HALF_FRAME_HOST = """
import itertools, time
from i2scli.link import connect, stream
sent = []
orig = stream.Stream.send
def send(self, frame):
    sent.append(1)
    if len(sent) < 40:
        return orig(self, frame)
    self.port.write(frame[:len(frame) // 2])
    self.port.serial.flush()
    time.sleep(0.5)  # the pty's reader (the board model) takes them: a pty closed by the kill drops what it holds
    print('stopped', flush=True)
    time.sleep(60)
stream.Stream.send = send
with connect({path!r}, {baud}expect={{'mode': 'tx'}}) as a:
    cfg = dict(id=0, sck={sck}, ws={ws}, sd={sd}, bits=16, format='mono', rate=8000, ibuf=4096, payload=96,
               timeout_ms=1000)
    a.play(cfg, itertools.repeat(bytes(960)))
"""


def kill_host_mid_frame(path: str, sck: int, ws: int, sd: int, baud: int | None = None) -> float:
    """A host that plays, sends half of its 40th frame and is SIGKILLed there: the board is left
    in a blocking read of the rest with Ctrl-C off. When it was killed (time.monotonic)."""
    import time

    code = HALF_FRAME_HOST.format(path=path, baud=f"baud={baud}, " if baud else "", sck=sck, ws=ws, sd=sd)
    host = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV)
    assert host.stdout.readline().split() == ["stopped"]
    os.kill(host.pid, signal.SIGKILL)
    host.wait()
    return time.monotonic()


def raw_prompt(path: str, since: float, limit: float = 20.0) -> tuple[bytes, float]:
    """Listen at 115200 without writing until the raw REPL's `\\x04>`; what came and how long after `since`."""
    import time

    import serial

    port = serial.Serial(path, 115200, timeout=0.1)
    seen = b""
    while not seen.endswith(b"\x04>") and time.monotonic() - since < limit:
        seen += port.read(4096)
    port.close()
    return seen, time.monotonic() - since



def stop_process(p: subprocess.Popen, wait: float = 10) -> None:
    """Terminate a helper server, killing it if it has not gone after `wait` seconds."""
    if p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(wait)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def raw_pty() -> tuple[int, int, str]:
    """A pseudo-terminal in raw mode with no echo, as a serial device is: (master, slave, path)."""
    from i2scli.sim.pty import raw_pty

    return raw_pty()


def peak_rss_run(args, timeout: float = 90) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run i2s, sampling its resident memory: (result, peak RSS in MB, seconds). A run still going
    after `timeout` seconds is killed and fails the test."""
    import threading
    import time

    t0 = time.monotonic()
    p = subprocess.Popen([*I2S, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=ENV, stdin=subprocess.DEVNULL)
    out: list = []
    reader = threading.Thread(target=lambda: out.append(p.communicate()), daemon=True)
    reader.start()
    peak = 0
    while reader.is_alive() and time.monotonic() - t0 < timeout:
        try:
            status = Path(f"/proc/{p.pid}/status").read_text()
            peak = max(peak, int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS")).split()[1]))
        except (OSError, StopIteration, ValueError):
            pass
        time.sleep(0.05)
    if reader.is_alive():
        p.kill()
        reader.join(10)
        pytest.fail(f"i2s {' '.join(map(str, args))} still running after {timeout} s")
    stdout, stderr = out[0]
    return subprocess.CompletedProcess(args, p.returncode, stdout, stderr), peak / 1024, time.monotonic() - t0


class LockedSender:
    """A connection's sendall behind a lock: what pyserial's rfc2217.PortManager writes its answers
    to while another thread sends the data."""

    def __init__(self, conn):
        import threading

        self.conn = conn
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            self.conn.sendall(data)


class TcpServer:
    """A TCP server on loopback serving one client at a time in a thread: a subclass says what
    `_session(conn)` does with each; `close()` stops it."""

    scheme = "socket"

    def __init__(self):
        import socket
        import threading

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)  # look at `alive` between clients
        self.port = self.listener.getsockname()[1]
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.alive = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.alive:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self._session(conn)
            finally:
                conn.close()

    def _session(self, conn) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.alive = False
        self.listener.close()
        self.thread.join(3)
