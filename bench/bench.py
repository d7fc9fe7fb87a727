"""The i2s benchmark on the virtual board. Run it as `bench/run`; see bench/README.md.

Every figure is a ratio or a count, taken in one run with its reference measured side by side
(interleaved where it repeats): absolute times on a shared machine drift, ratios much less.
Results: bench/results/latest.json (every raw number) and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from i2scli import audio, link, protocol, session
from i2scli.audio import fit, wirecode
from i2scli.link import Agent, connect, open_transport
from i2scli.sim.profiles import PROFILES

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PY = sys.executable
MPREMOTE = str(Path(PY).parent / "mpremote")
I2S = [PY, "-m", "i2scli"]
PROFILE_ORDER = ["openmv", "stm32", "rp2", "esp32", "esp32:cp2102", "esp32:ch340", "esp32:cp2102n", "esp32s3",
                 "mimxrt", "fast"]


def bridge_baud(bridge: str) -> int:
    """The rate `--baud auto` takes for a bridge the virtual board models (i2scli/link/baud.py)."""
    from i2scli.link import baud

    for b in (*baud.BRIDGES.values(), baud.CP2102N):
        if bridge.lower() in b.name.lower().split("/"):
            return b.max_baud
    raise ValueError(f"no such bridge {bridge!r}")
STREAMS = [(r, b, c) for r in (8000, 16000, 22050, 44100, 48000) for b in (16, 32) for c in (1, 2)]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def now_us() -> int:
    """CLOCK_MONOTONIC in µs: the virtual board's ticks_us and its events' t_us."""
    return time.monotonic_ns() // 1000


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# -- the virtual board in its own process, as users run it --------------------------------------
class Sim:
    """`i2s sim` in a subprocess (never in this process: its link threads would share our GIL)."""

    def __init__(self, profile: str, out: Path, *, capture: bool = False, rx_source: str | None = None,
                 extra: tuple = ()):
        out.mkdir(parents=True, exist_ok=True)
        self.profile = profile
        self.events_path = out / "events.jsonl"
        self.capture = out / "tx.wav" if capture else None
        cmd = [*I2S, "sim", "--profile", profile, "--events", str(self.events_path), *extra]
        if capture:
            cmd += ["--tx-capture", str(self.capture)]
        if rx_source:
            cmd += ["--rx-source", rx_source]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.path = self.proc.stdout.readline().strip()
        if not self.path.startswith("/dev/"):
            raise RuntimeError(f"i2s sim did not start: {self.proc.stderr.read()}")
        self.summary = ""
        self.events: list[dict] = []
        self.wait_booted()

    def wait_booted(self, timeout: float = 20.0) -> None:
        """The port exists before the interpreter behind it has booted; a real board a command
        talks to has long booted: wait for the friendly prompt, so no figure counts the boot."""
        import serial

        port = serial.Serial(self.path, timeout=0.1)
        try:
            port.write(b"\r")
            seen = b""
            deadline = time.monotonic() + timeout
            while not seen.endswith(b">>> ") and time.monotonic() < deadline:
                seen += port.read(256)
        finally:
            port.close()

    def stop(self) -> list[dict]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, self.summary = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        if self.events_path.exists():
            self.events = [json.loads(line) for line in self.events_path.read_text().splitlines()]
        return self.events

    def __enter__(self) -> Sim:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# Forks the command from a small process and reports its rusage. Linux counts a child's peak RSS
# from the moment of fork, so a command forked straight from this (big) process would show our RSS
# as its peak; from this wrapper it shows at most the wrapper's ~10 MB, far below any i2s command.
RUSAGE_WRAPPER = """\
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, st, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"utime": ru.ru_utime, "stime": ru.ru_stime, "maxrss_kb": ru.ru_maxrss}, f)
sys.exit(os.waitstatus_to_exitcode(st))
"""


def run(args: list[str], timeout: float = 600, rusage: bool = False) -> dict:
    """A command as a child process: wall time; with rusage=True its own CPU time and peak RSS
    (through RUSAGE_WRAPPER, which adds its start-up to the wall time)."""
    ru_path = None
    if rusage:
        fd, ru_path = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        args = [PY, "-c", RUSAGE_WRAPPER, ru_path, *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        t0_us = now_us()
        p = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        timer = threading.Timer(timeout, lambda: p.kill())
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        res = {"args": args, "t0_us": t0_us, "wall": wall, "rc": p.returncode,
               "cpu_self": ru.ru_utime + ru.ru_stime,  # the child's own CPU (and its waited-for children)
               "stdout": out.read().decode(errors="replace"), "stderr": err.read().decode(errors="replace")}
    if ru_path:
        try:
            res.update(json.loads(Path(ru_path).read_text()))
            res["cpu"] = res["utime"] + res["stime"]
        except (OSError, ValueError):
            pass
        os.unlink(ru_path)
    return res


def checked(r: dict) -> dict:
    if r["rc"] != 0:
        raise RuntimeError(f"{' '.join(map(str, r['args']))} failed ({r['rc']}): {r['stderr'][-2000:]}")
    return r


def write_wav(path: Path, seconds: float, rate: int, bits: int, channels: int, block_s: float = 1.0) -> int:
    """A tone that is never zero (first sample on SD = first non-zero sample), written in blocks."""
    frames = int(round(seconds * rate))
    dtype, sub, amp = ("int16", "PCM_16", 8000) if bits == 16 else ("int32", "PCM_32", 8000 << 16)
    with sf.SoundFile(path, "w", samplerate=rate, channels=channels, subtype=sub, format="WAV") as f:
        done = 0
        step = max(1, int(block_s * rate))
        while done < frames:
            n = min(step, frames - done)
            k = np.arange(done, done + n)
            x = (amp + (amp // 2) * np.sin(2 * np.pi * 997 * k / rate)).astype(dtype)
            f.write(np.repeat(x[:, None], channels, axis=1))
            done += n
    return frames


def first_nonzero(capture: Path, start: int = 0, stop: int | None = None) -> int | None:
    data, _ = sf.read(capture, dtype="int32", always_2d=True)
    seg = data[start:stop]
    nz = np.flatnonzero(seg.any(axis=1))
    return int(nz[0]) if len(nz) else None


# ------------------------------------------------------------------------------------------------
# 1 + 4: link efficiency (fast profile) and board heap per frame
PUMP_CHUNK = 4096

PUMP_UP = """\
import sys, micropython, time
micropython.kbd_intr(-1)
_b = bytearray({chunk})
_r = sys.stdin.buffer.readinto
_n = {n}
print('GO')
_t = time.ticks_us()
while _n > 0:
    _n -= _r(_b)
_t = time.ticks_diff(time.ticks_us(), _t)
micropython.kbd_intr(3)
print('US', _t)
"""

PUMP_DOWN = """\
import sys, time
_b = bytes({chunk})
_w = sys.stdout.buffer.write
print('GO')
for _i in range({count}):
    _w(_b)
"""


def _raw_exec(agent: Agent, code: str) -> None:
    agent.launcher.exec(code)  # the agent's own way into the raw REPL (prompt bookkeeping included)


def _read_until(ser, marker: bytes, timeout: float, buf: bytearray | None = None) -> bytearray:
    buf = bytearray() if buf is None else buf
    deadline = time.monotonic() + timeout
    while marker not in buf:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {marker!r}; got {bytes(buf[-200:])!r}")
        n = ser.in_waiting
        buf += ser.read(n or 1)
    return buf


def pump_up(agent: Agent, n: int, data: bytes) -> dict:
    """Bare byte pump host -> board: readinto() in a loop in the raw REPL, same pty, same interpreter."""
    ser = agent.serial
    _raw_exec(agent, PUMP_UP.format(chunk=PUMP_CHUNK, n=n))
    _read_until(ser, b"GO\r\n", 10)
    t0 = time.perf_counter()
    view = memoryview(data)
    for i in range(0, n, 65536):
        ser.write(view[i:i + 65536])
    out = _read_until(ser, b"\x04>", 120)
    dt = time.perf_counter() - t0
    board_us = int(out.split(b"US ")[1].split(b"\r")[0])
    agent.launcher._prompt_ready = False
    return {"bytes": n, "wall": dt, "rate": n / dt, "board_rate": n / (board_us / 1e6)}


def pump_down(agent: Agent, n: int) -> dict:
    """Bare byte pump board -> host: sys.stdout.buffer.write() of a buffer in a loop."""
    ser = agent.serial
    _raw_exec(agent, PUMP_DOWN.format(chunk=PUMP_CHUNK, count=n // PUMP_CHUNK))
    buf = _read_until(ser, b"GO\r\n", 10)
    t0 = time.perf_counter()
    got = len(buf) - buf.index(b"GO\r\n") - 4
    while got < n:
        got += len(ser.read(max(1, min(ser.in_waiting, n - got))))
    dt = time.perf_counter() - t0
    _read_until(ser, b"\x04>", 30)
    agent.launcher._prompt_ready = False
    return {"bytes": n, "wall": dt, "rate": n / dt}


def agent_play(agent: Agent, cfg: dict, data: bytes) -> dict:
    if not agent.hello:
        agent.launch()
    blocks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    t0 = time.perf_counter()
    s = agent.play(cfg, blocks)
    dt = time.perf_counter() - t0
    return {"bytes": len(data), "wall": dt, "rate": len(data) / dt, "summary": _slim(s)}


def agent_record(agent: Agent, cfg: dict, n: int, fb: int) -> dict:
    if not agent.hello:
        agent.launch()
    got = [0]

    def on_data(d):
        got[0] += len(d)

    t0 = time.perf_counter()
    s = agent.record({**cfg, "frames": n // fb}, on_data)
    dt = time.perf_counter() - t0
    return {"bytes": got[0], "wall": dt, "rate": got[0] / dt, "summary": _slim(s)}


def agent_probe(agent: Agent, n: int) -> dict:
    """The protocol alone (PROBE frames, credits, CRC; no I2S): Agent.probe both ways."""
    if not agent.hello:
        agent.launch()
    return agent.probe(up=n, down=n)


def _slim(s: dict) -> dict:
    keep = ("reason", "frames", "bytes", "underruns", "overruns", "lost_frames", "crc_errors", "resyncs",
            "seq_gaps", "heap_alloc", "heap_frames", "heap_method", "elapsed_us", "host_crc_errors",
            "host_resyncs", "host_seq_gaps")
    return {k: s.get(k) for k in keep if k in s}


def heap_per_frame(s: dict, fb: int, payload: int) -> dict:
    frames = s.get("heap_frames") or 0
    alloc = s.get("heap_alloc")
    data_frames = frames * fb / payload if payload else 0
    return {"heap_alloc": alloc, "heap_frames": frames, "data_frames": round(data_frames),
            "bytes_per_audio_frame": (alloc / frames) if frames else None,
            "bytes_per_data_frame": (alloc / data_frames) if data_frames else None,
            "method": s.get("heap_method")}


def fig_link(work: Path, reps: int, mib: int) -> dict:
    n = mib << 20
    data = bytes(range(256)) * (n // 256)
    rate = 8_000_000  # 32-bit stereo: 64 MB/s on the bus, far more than the stack moves: the link is the limit
    bus = audio.BusFormat(rate, 32, 2)
    out = {"profile": "fast", "bytes": n, "bus": bus.describe(), "pump_chunk": PUMP_CHUNK, "runs": []}
    with Sim("fast", work / "link") as sim, connect(sim.path) as agent:
        cfg_tx = session.bus_config(agent, session.BusOptions(), "tx", bus)
        cfg_rx = session.bus_config(agent, session.BusOptions(), "rx", bus)
        out["payload_tx"], out["payload_rx"], out["ibuf"] = cfg_tx["payload"], cfg_rx["payload"], cfg_tx["ibuf"]
        # warm-up: first-use costs (launch, imports on the board) out of the measured runs
        agent_play(agent, cfg_tx, data[: 1 << 20])
        pump_up(agent, 1 << 20, data)
        for rep in range(reps):
            r = {"rep": rep}
            r["pump_up"] = pump_up(agent, n, data)
            r["play"] = agent_play(agent, cfg_tx, data)
            r["probe"] = agent_probe(agent, n)
            r["record"] = agent_record(agent, cfg_rx, n, bus.frame_bytes)
            r["record_4096"] = agent_record(agent, {**cfg_rx, "payload": 4096}, n, bus.frame_bytes)
            r["pump_down"] = pump_down(agent, n)
            out["runs"].append(r)
            log(f"link rep {rep}: MB/s pump up {r['pump_up']['rate'] / 1e6:.1f}, play {r['play']['rate'] / 1e6:.1f}, "
                f"probe up {r['probe']['up'] / 1e6:.1f} down {r['probe']['down'] / 1e6:.1f}, "
                f"record {r['record']['rate'] / 1e6:.1f} (4096: {r['record_4096']['rate'] / 1e6:.1f}), "
                f"pump down {r['pump_down']['rate'] / 1e6:.1f}")
    runs = out["runs"]
    out["play_ratio"] = med([r["play"]["rate"] / r["pump_up"]["rate"] for r in runs])
    out["record_ratio"] = med([r["record"]["rate"] / r["pump_down"]["rate"] for r in runs])
    for k in ("pump_up", "play", "record", "record_4096", "pump_down"):
        out[f"{k}_rate_median"] = med([r[k]["rate"] for r in runs])
    # diagnostics (not the figure): the protocol without I2S (probe), and RX with 4096-byte DATA frames
    out["probe_up_ratio"] = med([r["probe"]["up"] / r["pump_up"]["rate"] for r in runs])
    out["probe_down_ratio"] = med([r["probe"]["down"] / r["pump_down"]["rate"] for r in runs])
    out["record_4096_ratio"] = med([r["record_4096"]["rate"] / r["pump_down"]["rate"] for r in runs])
    last = runs[-1]
    out["heap"] = {
        "play": heap_per_frame(last["play"]["summary"], bus.frame_bytes, cfg_tx["payload"]),
        "record": heap_per_frame(last["record"]["summary"], bus.frame_bytes, cfg_rx["payload"]),
    }
    return out


# ------------------------------------------------------------------------------------------------
# 2: against mpremote
def fig_mpremote(work: Path, sizes: dict) -> dict:
    """`mpremote fs cp` of a WAV vs `i2s play` of it, whole commands, same board. The WAV's rate is far
    above what the link carries, so i2s moves the bytes as fast as it can (real-time playback would
    take as long as the audio lasts, which says nothing about moving bytes)."""
    out = {}
    for profile, nbytes in sizes.items():
        d = work / f"mpremote-{profile}"
        d.mkdir(parents=True, exist_ok=True)
        rate = 16_000_000  # 16-bit stereo: 64 MB/s on the bus
        frames = nbytes // 4
        wav, tiny = d / "data.wav", d / "tiny.wav"
        write_wav(wav, frames / rate, rate, 16, 2, block_s=0.01)
        write_wav(tiny, 64 / rate, rate, 16, 2)  # 64 frames: start-up with (next to) no data
        payload = frames * 4
        with Sim(profile, d / "sim") as sim:
            play = [*I2S, "play", "-p", sim.path, "-q", "--no-probe"]
            r_i2s = [checked(run([*play, str(wav)]))]
            r_cp = checked(run([MPREMOTE, "connect", sim.path, "fs", "cp", str(wav), ":data.wav"]))
            r_i2s.append(checked(run([*play, str(wav)])))
            # fixed costs, to see the rates apart from start-up
            r_tiny = checked(run([*play, str(tiny)]))
            r_pass = checked(run([MPREMOTE, "connect", sim.path, "exec", "pass"]))
        cp = r_cp["wall"]
        i2s = med([r["wall"] for r in r_i2s])
        v = {"bytes": payload, "file_bytes": wav.stat().st_size, "mpremote_cp_s": cp,
             "i2s_play_s": [r["wall"] for r in r_i2s], "i2s_play_tiny_s": r_tiny["wall"],
             "mpremote_exec_pass_s": r_pass["wall"], "mpremote_rate": payload / cp, "i2s_rate": payload / i2s,
             "ratio": cp / i2s}
        v["mpremote_rate_no_startup"] = payload / max(cp - r_pass["wall"], 1e-6)
        v["i2s_rate_no_startup"] = payload / max(i2s - r_tiny["wall"], 1e-6)
        v["ratio_no_startup"] = v["i2s_rate_no_startup"] / v["mpremote_rate_no_startup"]
        out[profile] = v
        log(f"mpremote vs i2s on {profile}: {payload} B, fs cp {cp:.2f} s, i2s play {i2s:.2f} s "
            f"-> {cp / i2s:.1f}x (without start-up: {v['ratio_no_startup']:.0f}x)")
    return out


# ------------------------------------------------------------------------------------------------
# 3: time to first sample
def ttfs_baud(profile: str) -> str | None:
    """The rate `--baud auto` takes on this profile's bridge; a pseudo-terminal shows no USB ids
    to go by, so figure 3 says it (None: no UART, native USB)."""
    from i2scli.sim.profiles import get_profile

    prof = get_profile(profile)
    return str(bridge_baud(prof.bridge)) if prof.link.uart else None


def _ttfs_once(work: Path, profile: str, warm: bool, wav: Path, rate: int, probe: bool = True) -> dict:
    baud = ttfs_baud(profile)
    with Sim(profile, work, capture=True) as sim:
        if warm:
            link.install(sim.path)
        r = checked(run([*I2S, "play", "-p", sim.path, "-q", *([] if probe else ["--no-probe"]),
                         *(["--baud", baud] if baud else []), str(wav)]))
        m = checked(run([MPREMOTE, "connect", sim.path, "exec", "pass"]))
    evs = sim.events
    t0 = next(e["t_us"] for e in evs if e["ev"] == "i2s_init" and e["mode"] == "tx")
    k = first_nonzero(sim.capture)
    t_first = t0 + k * 1e6 / rate
    return {"ttfs_s": (t_first - r["t0_us"]) / 1e6, "i2s_init_s": (t0 - r["t0_us"]) / 1e6,
            "zeros_before_audio": k, "play_wall": r["wall"], "mpremote_exec_pass_s": m["wall"]}


def breakdown(work: Path, profile: str, warm: bool, wav: Path) -> dict:
    """Where time to first sample goes, in this process (imports excluded; see import_cost)."""
    marks = []

    def wrap(obj, name, label=None):
        f = getattr(obj, name)

        def w(*a, **k):
            t = now_us()
            try:
                return f(*a, **k)
            finally:
                extra = len(a[0]) if a and isinstance(a[0], str) else None
                marks.append({"step": label or name, "start_us": t, "end_us": now_us(), "bytes": extra})

        setattr(obj, name, w)

    with Sim(profile, work, capture=True) as sim:
        if warm:
            link.install(sim.path)
        inp = audio.open_input(str(wav))
        bus = audio.BusFormat(inp.rate, 16, inp.channels)
        blocks = audio.play_blocks(inp, bus)
        t_start = now_us()
        transport = open_transport(sim.path)
        t_open = now_us()
        agent = Agent(transport, sim.path, baud=int(ttfs_baud(profile) or 0) or "off")
        wrap(agent.transport, "enter_raw_repl")
        wrap(agent.launcher, "exec")
        wrap(agent.launcher, "await_hello")
        wrap(agent.launcher, "_start", "upload and start")  # at the raised rate on UART boards
        wrap(agent.link, "read_until")
        wrap(agent, "probe")
        try:
            agent.launch()
            t_hello = now_us()
            s = session.play(agent, sim.path, blocks, bus, session.BusOptions())
        finally:
            agent.close()
            inp.close()
    t0 = next(e["t_us"] for e in sim.events if e["ev"] == "i2s_init" and e["mode"] == "tx")
    k = first_nonzero(sim.capture)
    t_first = t0 + k * 1e6 / bus.rate
    tl = dict(s["board"].get("timeline", []))
    rel = lambda t: round((t - t_start) / 1000, 2)  # noqa: E731
    steps = [{"step": "open port", "ms": rel(t_open)}]
    for m in marks:
        took = round((m["end_us"] - m["start_us"]) / 1000, 2)
        steps.append({"step": m["step"], "from_ms": rel(m["start_us"]), "ms": took,
                      **({"code_bytes": m["bytes"]} if m["bytes"] else {})})
    steps.append({"step": "HELLO received", "ms": rel(t_hello)})
    steps += [{"step": f"board {name}", "ms": rel(t)} for name, t in tl.items() if name in ("i2s_init", "first_audio")]
    steps.append({"step": "first sample on SD", "ms": rel(t_first)})
    uploads = [m for m in marks if m["step"] == "exec" and (m["bytes"] or 0) > 400]
    reads = [m for m in marks if m["step"] == "read_until"]
    return {"profile": profile, "warm": warm, "total_ms": rel(t_first), "steps": steps,
            "upload_exec_ms": round(sum(m["end_us"] - m["start_us"] for m in uploads) / 1000, 1),
            "upload_wait_ms": round(sum(m["end_us"] - m["start_us"] for m in reads) / 1000, 1),
            "upload_bytes": sum(m["bytes"] for m in uploads)}


def import_cost(reps: int = 3) -> dict:
    base = med([checked(run([PY, "-c", "pass"]))["wall"] for _ in range(reps)])
    imp = med([checked(run([PY, "-c", "import i2scli.cli, i2scli.cli.run, i2scli.session, i2scli.audio, "
                                      "i2scli.cli.ui, mpremote.transport_serial"]))["wall"] for _ in range(reps)])
    help_ = med([checked(run([*I2S, "play", "--help"]))["wall"] for _ in range(reps)])
    return {"python_start_s": base, "imports_s": imp, "i2s_play_help_s": help_}


def fig_ttfs(work: Path, profiles: list[str], reps: int) -> dict:
    rate = 16000  # 16-bit stereo, 64 kB/s: fits every USB profile's link
    wav = work / "ttfs.wav"
    write_wav(wav, 0.2, rate, 16, 2)
    # UART boards: 50 ms of 16-bit mono (32 kB/s fits a CP2102 at 921600 baud with room to spare)
    uart_wav = work / "ttfs-uart.wav"
    write_wav(uart_wav, 0.05, rate, 16, 1)
    out = {"stream": f"{rate} Hz 16-bit stereo, 0.2 s", "uart_stream": f"{rate} Hz 16-bit mono, 0.05 s",
           "profiles": {}}
    for profile in profiles:
        wav = uart_wav if ttfs_baud(profile) else work / "ttfs.wav"
        # warm_no_probe is a diagnostic (what the link probe costs), not the figure
        runs = {"cold": [], "warm": [], "warm_no_probe": []}
        for rep in range(reps):
            for kind in runs:
                r = _ttfs_once(work / f"ttfs-{profile}-{kind}-{rep}", profile, kind != "cold", wav, rate,
                               probe=kind != "warm_no_probe")
                runs[kind].append(r)
        p = {"runs": runs}
        for kind in runs:
            p[f"{kind}_ttfs_s"] = med([r["ttfs_s"] for r in runs[kind]])
            p[f"{kind}_ratio"] = med([r["ttfs_s"] / r["mpremote_exec_pass_s"] for r in runs[kind]])
            # the whole command: until `i2s play` returns, its last frame on the pins
            p[f"{kind}_whole_s"] = med([r["play_wall"] for r in runs[kind]])
            p[f"{kind}_whole_ratio"] = med([r["play_wall"] / r["mpremote_exec_pass_s"] for r in runs[kind]])
        p["mpremote_exec_pass_s"] = med([r["mpremote_exec_pass_s"] for k in runs for r in runs[k]])
        p["breakdown"] = {kind: breakdown(work / f"bd-{profile}-{kind}", profile, kind == "warm", wav)
                          for kind in ("cold", "warm")}
        out["profiles"][profile] = p
        log(f"ttfs {profile}: cold {p['cold_ttfs_s']:.3f} s ({p['cold_ratio']:.1f}x), warm {p['warm_ttfs_s']:.3f} s "
            f"({p['warm_ratio']:.1f}x; --no-probe {p['warm_no_probe_ratio']:.1f}x) of mpremote exec pass "
            f"{p['mpremote_exec_pass_s']:.3f} s; whole command cold {p['cold_whole_ratio']:.1f}x, "
            f"warm {p['warm_whole_ratio']:.1f}x")
    out["imports"] = import_cost()
    return out


# ------------------------------------------------------------------------------------------------
# 5 + 6: host memory and CPU
def fig_host(work: Path, short_s: float, long_s: float) -> dict:
    rate, bits, ch = 48000, 32, 2
    d = work / "host"
    d.mkdir(parents=True, exist_ok=True)
    files = {"short": d / "short.wav", "long": d / "long.wav"}
    secs = {"short": short_s, "long": long_s}
    for k, p in files.items():
        write_wav(p, secs[k], rate, bits, ch)
    out = {"stream": f"{rate} Hz {bits}-bit stereo", "seconds": secs, "play": {}, "record": {}}
    with Sim("fast", d / "sim", rx_source="sine:440") as sim:
        for k in ("short", "long"):
            r = checked(run([*I2S, "play", "-p", sim.path, "-q", str(files[k])], rusage=True))
            out["play"][k] = {x: r[x] for x in ("wall", "cpu", "utime", "stime", "maxrss_kb")}
            r = checked(run([*I2S, "record", "-p", sim.path, "-q", "-r", str(rate), "-b", str(bits), "-c", str(ch),
                             "-d", f"{secs[k]}s", str(d / f"rec-{k}.wav")], rusage=True))
            out["record"][k] = {x: r[x] for x in ("wall", "cpu", "utime", "stime", "maxrss_kb")}
            log(f"host {k}: play {out['play'][k]}, record {out['record'][k]}")
    for m in ("play", "record"):
        s, lg = out[m]["short"], out[m]["long"]
        out[m]["rss_ratio"] = lg["maxrss_kb"] / s["maxrss_kb"]
        # CPU per audio second in steady state: the slope between the two runs (start-up cancels out)
        out[m]["cpu_per_audio_s"] = (lg["cpu"] - s["cpu"]) / (long_s - short_s)
        out[m]["cpu_per_audio_s_incl_startup"] = lg["cpu"] / long_s
    return out


# ------------------------------------------------------------------------------------------------
# 7: duplex overhead
def fig_duplex(work: Path, profile: str = "rp2", cycles: int = 3) -> dict:
    rate, bits, ch = 16000, 32, 1
    d = work / "duplex"
    d.mkdir(parents=True, exist_ok=True)
    wav = d / "play.wav"
    write_wav(wav, 0.3, rate, bits, ch)
    with Sim(profile, d / "sim", capture=True, rx_source="ramp",
             extra=("--codec-release", "500us", "--codec-drive", "100us")) as sim:
        r = checked(run([*I2S, "duplex", "-p", sim.path, str(wav), "-o", str(d / "rec-{n}.wav"), "-d", "0.3s",
                         "--cycles", str(cycles), "--json", "-q"]))
    summary = json.loads(r["stdout"])
    cyc = summary.get("cycles", [summary])
    evs = sim.events
    inits = {e["sid"]: e for e in evs if e["ev"] == "i2s_init"}
    deinits = [e for e in evs if e["ev"] == "i2s_deinit"]
    cap_off, tx_segs, last_rx = 0, [], None
    switches = []
    for e in deinits:
        ini = inits[e["sid"]]
        if ini["mode"] == "rx":
            last_rx = ini["t_us"] + (e["frames"] - 1) * 1e6 / ini["rate"]
        else:
            tx_segs.append((ini, cap_off, cap_off + e["frames"], last_rx))
            cap_off += e["frames"]
            last_rx = None
    for n, (ini, a, b, t_rx) in enumerate(tx_segs):
        k = first_nonzero(sim.capture, a, b)
        if t_rx is None or k is None:
            continue
        s = cyc[n]["settings"] if n < len(cyc) else cyc[-1]["settings"]
        t_audio = ini["t_us"] + k * 1e6 / rate
        lead = s["lead_in_frames"] / rate * 1e6
        delay = s["switch_delay_us"]
        gap = t_audio - t_rx
        switches.append({"last_rx_to_first_tx_us": round(gap), "switch_delay_us": delay, "lead_in_us": round(lead),
                         "overhead_us": round(gap - delay - lead),
                         "rx_stop_to_tx_init_us": round(ini["t_us"] - t_rx),
                         "tx_init_to_audio_us": round(k * 1e6 / rate)})
    board = [sw for c in cyc for sw in c.get("switches", [])]
    return {"profile": profile, "stream": f"{rate} Hz {bits}-bit mono", "cycles": cycles, "switches": switches,
            "overhead_us_max": max((s["overhead_us"] for s in switches), default=None),
            "overhead_us_median": med([s["overhead_us"] for s in switches]),
            "board_timeline": board, "conflicts": sum(1 for e in evs if e["ev"] == "bus_conflict"),
            "underruns": summary.get("underruns"), "overruns": summary.get("overruns")}


# ------------------------------------------------------------------------------------------------
# 8: what fits
def stream_name(rate, bits, ch) -> str:
    return f"{rate / 1000:g}k/{bits}/{'st' if ch == 2 else 'mo'}"


def _real_run(agent: Agent, mode: str, bus: audio.BusFormat, seconds: float) -> dict:
    """One stream for `seconds` of audio; the wall time is capped (a link that cannot keep up would
    otherwise take far longer than the audio lasts)."""
    cfg = session.bus_config(agent, session.BusOptions(), mode, bus)
    if not agent.hello:
        agent.launch()
    cap = seconds * 1.25 + 2.0
    t0 = time.monotonic()
    deadline = t0 + cap
    total = int(round(bus.rate * seconds)) * bus.frame_bytes
    res = {"mode": mode, "stream": bus.describe(), "seconds": seconds, "payload": cfg["payload"]}
    try:
        if mode == "tx":
            block = bytes(max(cfg["payload"], bus.bytes_per_second // 20 // bus.frame_bytes * bus.frame_bytes))
            state = {"sent": 0}

            def blocks():
                while state["sent"] < total and time.monotonic() < deadline:
                    n = min(len(block), total - state["sent"])
                    state["sent"] += n
                    yield block[:n]

            s = agent.play(cfg, blocks())
            res["complete"] = state["sent"] >= total
        else:
            stop = threading.Event()
            timer = threading.Timer(cap, stop.set)
            timer.start()
            got = [0]
            try:
                s = agent.record({**cfg, "frames": total // bus.frame_bytes},
                                 lambda d: got.__setitem__(0, got[0] + len(d)), stop=stop)
            finally:
                timer.cancel()
            res["complete"] = got[0] >= total
    except Exception as e:  # a failed stream is a result too (it does not fit)
        res.update({"error": f"{type(e).__name__}: {e}", "complete": False, "agent": {}})
        return res
    res["wall"] = time.monotonic() - t0
    res["agent"] = _slim(s)
    # Real time: a stream the link cannot carry takes longer than its audio, even when the DMA
    # ring hides the shortfall from the xrun counters in a short run. Play adds its play-out
    # (at most what the ring holds) on top.
    limit = seconds * 1.05 + 0.5
    if mode == "tx":
        limit += cfg["ibuf"] / bus.bytes_per_second
    res["wall_limit"] = limit
    res["kept_up"] = res["wall"] <= limit
    return res


def fig_fits(work: Path, profiles: list[str], seconds: float, full: bool, lo: float = 0.6, hi: float = 1.2) -> dict:
    out = {"method": "full" if full else "probe+borderline", "seconds": seconds, "band": [lo, hi], "profiles": {}}
    for spec in profiles:
        # `esp32:ch340`: the esp32 profile behind that bridge, at the rate --baud auto picks
        profile, _, bridge = spec.partition(":")
        prof = PROFILES[profile]
        d = work / f"fits-{spec.replace(':', '-')}"
        sim = Sim(profile, d, rx_source="ramp", extra=("--bridge", bridge) if bridge else ())
        baud = bridge_baud(bridge) if bridge else "off"
        runs = []
        try:
            with connect(sim.path, baud=baud) as agent:
                hello = dict(agent.hello)
                rates = agent.probe()
                rows = []
                for rate, bits, ch in STREAMS:
                    bus = audio.BusFormat(rate, bits, ch)
                    row = {"stream": stream_name(rate, bits, ch), "rate": rate, "bits": bits, "channels": ch}
                    for mode, direction in (("tx", "up"), ("rx", "down")):
                        cfg = session.bus_config(agent, session.BusOptions(), mode, bus)
                        need = protocol.stream_rate(rate, bits, ch, cfg["payload"], crc=bool(hello.get("crc")))
                        row[mode] = {"need": need, "ratio": need / rates[direction],
                                     "predicted": need <= rates[direction] * link.LINK_HEADROOM}
                    rows.append(row)
                # which streams get a real run
                for mode in ("tx", "rx"):
                    if full:
                        chosen = list(range(len(rows)))
                    else:
                        ratios = [r[mode]["ratio"] for r in rows]
                        chosen = [i for i, x in enumerate(ratios) if lo <= x <= hi]
                        below = [i for i, x in enumerate(ratios) if x < lo]
                        above = [i for i, x in enumerate(ratios) if x > hi]
                        if below:  # the hardest clear fit, as a check on the prediction
                            chosen.append(max(below, key=lambda i: ratios[i]))
                        if above:  # the easiest clear misfit, likewise
                            chosen.append(min(above, key=lambda i: ratios[i]))
                    for i in sorted(set(chosen)):
                        r = rows[i]
                        bus = audio.BusFormat(r["rate"], r["bits"], r["channels"])
                        res = _real_run(agent, mode, bus, seconds)
                        res["row"] = i
                        runs.append(res)
                        log(f"fits {profile} {mode} {r['stream']}: ratio {r[mode]['ratio']:.2f}, "
                            f"agent {res['agent'].get('underruns')}/{res['agent'].get('overruns')} xruns, "
                            f"wall {res.get('wall', 0):.2f}/{res.get('wall_limit', 0):.2f} s, "
                            f"complete {res['complete']}{' ' + res['error'] if 'error' in res else ''}")
        finally:
            sim.stop()
        # the board's own counts, session by session in order (the agent opens one I2S per stream)
        inits = {e["sid"]: e for e in sim.events if e["ev"] == "i2s_init"}
        sessions = [(inits[e["sid"]], e) for e in sim.events if e["ev"] == "i2s_deinit" and e["sid"] in inits]
        it = iter(sessions)
        for res in runs:
            r = rows[res["row"]]
            # the next session of this run's kind: a run that failed may or may not have opened one
            for ini, de in it:
                if ini["mode"] == res["mode"] and ini["rate"] == r["rate"] and ini["bits"] == r["bits"]:
                    res["sim"] = {k: de[k] for k in ("frames", "underruns", "underrun_frames", "overruns",
                                                      "overrun_frames")}
                    break
            else:
                res["sim"] = None
        for res in runs:
            row = rows[res["row"]][res["mode"]]
            simc = res.get("sim") or {}
            xruns = (simc.get("underruns", 0) + simc.get("overruns", 0)
                     + (res["agent"].get("underruns") or 0) + (res["agent"].get("overruns") or 0))
            ok = bool(res["complete"] and res.get("kept_up") and res.get("sim") is not None and xruns == 0
                      and "error" not in res)
            row.setdefault("runs", []).append({k: v for k, v in res.items() if k not in ("row",)})
            row["measured"] = ok if "measured" not in row else (row["measured"] and ok)
        for row in rows:
            for mode in ("tx", "rx"):
                m = row[mode]
                m["fits"] = m["measured"] if "measured" in m else m["predicted"]
                m["agrees"] = None if "measured" not in m else m["measured"] == m["predicted"]
        heaps = [heap_per_frame(res["agent"], 0, 0) | {"stream": res["stream"], "mode": res["mode"]}
                 for res in runs if res["agent"].get("heap_frames")]
        nominal = {"up": prof.link.vcp_in_rate or prof.link.in_rate, "down": prof.link.out_rate}
        if getattr(prof.link, "uart", False):  # a UART carries baud / 10 bytes a second each way (8N1), at most
            line = (baud if bridge else 115200) // 10
            nominal = {k: min(v or line, line) for k, v in nominal.items()}
        out["profiles"][spec] = {
            "baud": agent.baud,
            "link_nominal": {**nominal, "in_buffer": prof.link.in_buffer},
            "link_probe": {"up": rates["up"], "down": rates["down"]},
            "rows": rows, "sim_summary": sim.summary.strip(),
            "heap_nonzero": [h for h in heaps if h["heap_alloc"]],
            "heap_runs": len(heaps),
        }
    return out


# ------------------------------------------------------------------------------------------------
# 10: what fits with lossless wire compression, by content
def synth(content: str, rate: int, seconds: float, bits: int, channels: int, seed: int = 5) -> np.ndarray:
    """Test content, int16 or int32 (16-bit audio in 32-bit slots, as from a 16-bit file):
    speech (a voiced pitch glide with formants, syllables and pauses), music (six harmonics under a
    slow envelope, a little noise) or white noise at full scale."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    if content == "noise":
        x = rng.integers(-32768, 32768, (n, channels))
    else:
        if content == "speech":
            f0 = 120 + 40 * np.sin(2 * np.pi * 0.9 * t)
            phase = 2 * np.pi * np.cumsum(f0) / rate
            voice = sum(np.sin(k * phase) * np.exp(-(((k * f0) - fm) / 300) ** 2)
                        for k in range(1, 30) for fm in (700, 1200, 2600))
            env = np.clip(np.sin(2 * np.pi * 3 * t), 0, None) * (np.sin(2 * np.pi * 0.4 * t) > -0.6)
            mono = voice / max(np.abs(voice).max(), 1e-9) * 9000 * env + rng.normal(0, 20, n)
        else:
            env = (1 + np.sin(2 * np.pi * 0.7 * t)) / 2
            mono = sum(np.sin(2 * np.pi * f * t) / (i + 1)
                       for i, f in enumerate((220, 330, 440, 550, 660, 880))) * env * 5000 + rng.normal(0, 30, n)
        x = np.stack([mono, np.roll(mono, 100)], 1)[:, :channels]
    x = np.clip(x, -32768, 32767).astype(np.int16)
    return x.astype(np.int32) << 16 if bits == 32 else x


CONTENTS = ("speech", "music", "noise")


def fig_compress(work: Path, profiles: list[str], seconds: float = 3.0) -> dict:
    """Per profile and content: which streams fit raw, which only coded (the probe's rate and the
    ratio the host estimates, as `i2s play` decides), and real `i2s play` runs of 48 kHz 16-bit
    stereo for each content: xruns, the ratio, and the board's coder time per audio second."""
    out = {"seconds": seconds, "profiles": {}}
    for spec in profiles:
        profile, _, bridge = spec.partition(":")
        d = work / f"compress-{spec.replace(':', '-')}"
        sim = Sim(profile, d, extra=("--bridge", bridge) if bridge else ())
        baud = bridge_baud(bridge) if bridge else "off"
        try:
            with connect(sim.path, baud=baud) as agent:
                rates = agent.probe()
                inbuf = agent.identity.get("inbuf", 256)
            rows = []
            for rate, bits, ch in STREAMS:
                fb = bits // 8 * ch
                payload = protocol.tx_payload(inbuf, fb)  # as the host sizes DATA frames
                need = protocol.stream_rate(rate, bits, ch, payload)
                row = {"stream": stream_name(rate, bits, ch), "need": need, "raw": need <= rates["up"] * 0.9}
                for c in CONTENTS:
                    x = synth(c, rate, 2.0, bits, ch)
                    ratio = wirecode.estimate_ratio(x.astype("<i2" if bits == 16 else "<i4").tobytes(), bits, ch,
                                                    payload)
                    row[c] = {"ratio": ratio, "fits": need / ratio <= rates["up"] * 0.9}
                rows.append(row)
            runs = {}
            for c in CONTENTS:
                wav = d / f"{c}.wav"
                sf.write(wav, synth(c, 48000, seconds, 16, 2), 48000, subtype="PCM_16")
                r = run([*I2S, "play", "--json", "-q", "--baud", str(baud), "-p", sim.path, str(wav)])
                res = {"rc": r["rc"], "wall": r["wall"]}
                if r["rc"] == 0:
                    js = json.loads(r["stdout"])
                    res.update(underruns=js["underruns"], compression=js["compression"], frames=js["frames"])
                else:
                    res["error"] = r["stderr"].strip().splitlines()[-1][:200] if r["stderr"].strip() else ""
                runs[c] = res
                log(f"compress {spec} {c} 48k/16/st: rc {res['rc']}, {res.get('compression') or res.get('error')}")
        finally:
            sim.stop()
        out["profiles"][spec] = {"link_up": rates["up"], "rows": rows, "runs": runs}
    return out


def compress_table(f: dict) -> str:
    profs = list(f["profiles"])
    lines = ["What fits with compression (10): per content (s = speech, m = music, n = white noise) "
             "R = fits raw, C = fits only compressed, · = does not fit; as `i2s play` decides it (the probe's "
             "rate, the ratio it estimates from the file's first 2 s).", "",
             "| stream | " + " | ".join(profs) + " |", "|---|" + "---|" * len(profs)]
    for i in range(len(STREAMS)):
        cells = []
        for p in profs:
            row = f["profiles"][p]["rows"][i]
            cells.append(" ".join("R" if row["raw"] else "C" if row[c]["fits"] else "·" for c in CONTENTS))
        lines.append(f"| {f['profiles'][profs[0]]['rows'][i]['stream']} | " + " | ".join(cells) + " |")
    for c in CONTENTS:
        lines.append(f"| ratio, 48k/16/st {c} | " + " | ".join(
            f"{f['profiles'][p]['rows'][-3][c]['ratio']:.2f}" for p in profs) + " |")
        lines.append(f"| 48k/16/st {c}, real run | " + " | ".join(_run_cell(f["profiles"][p]["runs"][c])
                                                            for p in profs) + " |")
    return "\n".join(lines)


def _run_cell(r: dict) -> str:
    if r["rc"] != 0:
        return "refused" if r["rc"] == 4 else f"exit {r['rc']}"
    c = r.get("compression") or {}
    cost = c.get("board_us_per_audio_s")
    return (f"{r['underruns']} xruns, {c.get('ratio') or 1:.2f}:1" + (f", board {cost / 1000:.1f} ms/s" if cost else "")
            if c else f"{r['underruns']} xruns, raw")


# ------------------------------------------------------------------------------------------------
# 11: --fit, near-lossless on a link narrower than the coded stream
def song(rate: int, seconds: float, seed: int = 1) -> np.ndarray:
    """The song of tests/e2e/test_fit.py (analysis.plucked_song): -18 dBFS RMS, noise 46 dB under."""
    from i2scli.loopback import analysis

    return analysis.plucked_song(rate, seconds, seed)


FIT_CONTENTS = ("song", "speech", "music")


def _captured_snr(capture: Path, x: np.ndarray, src: audio.BusFormat, payload: int) -> float | None:
    """SNR against x of what the bus carried (the sim's TX capture), once the capture is checked
    to hold exactly what the quantiser makes of x (pauses of silence aside); None if it does not."""
    fitter = fit.Fitter(src, src, payload // src.frame_bytes)
    sent = np.frombuffer(fitter.feed(x.tobytes()) + fitter.finish(), "<i2").reshape(-1, 2)
    got, _ = sf.read(capture, dtype="int16", always_2d=True)
    heard, want = got[got.any(axis=1)], sent[sent.any(axis=1)]
    if not np.array_equal(heard, want):
        return None
    bus = np.zeros_like(sent)
    bus[sent.any(axis=1)] = heard
    ref, cap = x.astype(float), bus.astype(float)
    return 10 * np.log10((ref ** 2).sum() / max(((cap - ref) ** 2).sum(), 1e-9))


def fig_fit(work: Path, spec: str = "esp32:cp2102", rate: int = 44100, seconds: float = 10.0) -> dict:
    """44.1 kHz 16-bit stereo song, speech and music on an ESP32 behind a CP2102 (921600 baud):
    the host's estimates on the first 2 s (lossless ratio, near-lossless ratio, bits removed, SNR,
    wire rate), then a real `i2s play --fit --json` of each: what it chose, xruns, the SNR it
    measured, and the SNR of the TX capture against the file."""
    profile, _, bridge = spec.partition(":")
    out = {"spec": spec, "rate": rate, "seconds": seconds, "contents": {}}
    src = audio.BusFormat(rate, 16, 2)
    for c in FIT_CONTENTS:
        x = song(rate, seconds) if c == "song" else synth(c, rate, seconds, 16, 2)
        d = work / f"fit-{c}"
        wav = d / f"{c}.wav"
        sim = Sim(profile, d, capture=True, extra=("--bridge", bridge))
        try:
            sf.write(wav, x, rate, subtype="PCM_16")
            r = run([*I2S, "play", "--fit", "--json", "-q", "--baud", str(bridge_baud(bridge)), "-p", sim.path,
                     str(wav)], timeout=300)
            with connect(sim.path, baud=bridge_baud(bridge)) as agent:  # after: the play starts on a quiet board
                payload = session._payload(agent, "tx", src)
        finally:
            sim.stop()
        head = x[: 2 * rate].tobytes()
        lossless = fit.estimate(src, src, head, payload, near_lossless=False, coded=True)
        near = fit.estimate(src, src, head, payload, near_lossless=True, coded=True)
        res = {"payload": payload, "lossless_ratio": lossless.ratio, "lossless_need": lossless.need,
               "near_ratio": near.ratio, "near_need": near.need, "near_snr_db": near.snr_db,
               "near_bits": near.bits_removed, "rc": r["rc"]}
        if r["rc"] == 0:
            js = json.loads(r["stdout"])
            res.update(fit=js["fit"], underruns=js["underruns"], link_rate=js["link_rate"],
                       ratio=(js["compression"] or {}).get("ratio"), rate=js["rate"], channels=js["channels"])
            if js["fit"]["method"] == "near-lossless":
                res["capture_snr_db"] = _captured_snr(sim.capture, x, src, payload)
        else:
            res["error"] = r["stderr"].strip().splitlines()[-1][:300] if r["stderr"].strip() else ""
        out["contents"][c] = res
        log(f"fit {spec} {c}: rc {r['rc']}, {res.get('fit') or res.get('error')}")
    return out


def fit_table(f: dict) -> str:
    lines = [f"--fit on {f['spec']} (11): {f['rate'] // 1000}.{f['rate'] % 1000 // 100} kHz 16-bit stereo, "
             f"{f['seconds']:g} s each; estimates on the first 2 s in the board's DATA frames, then a real "
             f"`i2s play --fit --json`.", "",
             "| content | lossless: ratio, wire | near-lossless: ratio, wire, bits removed mean/max, SNR | "
             "`i2s play --fit` | SNR measured (host) / on the TX capture |", "|---|---|---|---|---|"]
    for c, v in f["contents"].items():
        nb = v["near_bits"]
        est = (f"{v['near_ratio']:.2f}:1, {_fmt_rate(v['near_need'])}, {nb['mean']:.1f}/{nb['max']}, "
               f"{v['near_snr_db']:.1f} dB")
        if v["rc"] == 0:
            ft = v["fit"]
            played = (f"{ft['method']} at {v['rate']} Hz {'stereo' if v['channels'] == 2 else 'mono'}, "
                      f"{v['underruns']} xruns, {v['ratio'] or 1:.2f}:1 (link {_fmt_rate(v['link_rate'])})")
            cap = v.get("capture_snr_db")
            snr = f"{ft['snr_db']:.2f} / " + (f"{cap:.2f} dB" if cap is not None else "—")
        else:
            played, snr = f"exit {v['rc']}", "—"
        lines.append(f"| {c} | {v['lossless_ratio']:.2f}:1, {_fmt_rate(v['lossless_need'])} | {est} | {played} "
                     f"| {snr} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# 12: the format `i2s test` chooses on each board
LOOPBACKS = {"rp2": "0>1", "stm32": "1>2", "mimxrt": "2>1", "esp32s3": "0>1", "esp32": "0>1"}


def fig_test_format(work: Path, reps: int = 3) -> dict:
    """Default `i2s test` (no -r/-b/-c) on a clean loopback per profile: the format chosen, its
    share of the probed link both ways, whether coded, and the verdict of `reps` runs."""
    out = {}
    for prof, lb in LOOPBACKS.items():
        runs = []
        for _ in range(reps):
            r = run([*I2S, "test", "-p", f"sim://{prof}?loopback={lb.replace('>', '%3E')}", "--json", "-d", "0.6s"],
                    timeout=180)
            try:
                js = json.loads(r["stdout"].splitlines()[0])
            except (ValueError, IndexError):
                runs.append({"rc": r["rc"]})
                continue
            xr = next(c["value"] for c in js["checks"] if c["name"] == "board.xruns")
            runs.append({"rc": r["rc"], "format": js["format"], "xruns": xr})
        out[prof] = runs
        log(f"test format {prof}: {[(x.get('format') or {}).get('why', x) for x in runs[:1]]}, "
            f"rc {[x['rc'] for x in runs]}")
    return out


def test_format_table(f: dict) -> str:
    lines = ["Default `i2s test` per profile (12): the format chosen with TX and RX at once, its share of the "
             "probed link both ways (at most 0.5), coded or raw, and exit codes of the runs.", "",
             "| profile | chosen | link share | coded | runs (exit, xruns) |", "|---|---|---|---|---|"]
    for prof, runs in f.items():
        fm = next((x["format"] for x in runs if "format" in x), None)
        if fm is None:
            lines.append(f"| {prof} | — | — | — | {[x['rc'] for x in runs]} |")
            continue
        bus = f"{fm['rate']} Hz {fm['bits']}-bit {'stereo' if fm['channels'] == 2 else 'mono'}"
        coded = f"{fm['code_ratio_estimate']:.2f}:1" if fm.get("coded") else "raw"
        said = ", ".join(f"{x['rc']}/{x.get('xruns')}" for x in runs)
        lines.append(f"| {prof} | {bus} | {fm['link_share']:.2f} | {coded} | {said} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# 13: the board coder's cost in instructions on bare-metal MicroPython
def fig_coder_cost(seconds: float = 2.0) -> dict:
    """bench/coder_cost.py: firmware/wirecode.py as armv6m .mpy on MicroPython's qemu port under
    -icount shift=0, 48 kHz 16-bit stereo song in the payload sizes the profiles use, with the
    Cortex-M0+ CPI of each coder measured from qemu's execution trace."""
    import shutil

    import coder_cost

    if not coder_cost.ELF.exists() or not shutil.which("qemu-system-arm"):
        return {"skipped": "needs qemu-system-arm and bench/qemu/firmware-mps2-an385.elf (bench/README.md)"}
    res = coder_cost.measure(seconds)
    res["trace"] = {"decode": coder_cost.trace("D", 244), "encode": coder_cost.trace("E", 4096)}
    return res


def coder_cost_table(f: dict) -> str:
    import coder_cost

    return coder_cost.table(f)


# ------------------------------------------------------------------------------------------------
# 9: whole commands against `mpremote exec pass`, warm board
def fig_commands(work: Path, profile: str = "rp2", reps: int = 7) -> dict:
    """Wall and CPU of whole `i2s` commands a script calls in a loop, each paired with an
    `mpremote exec pass` on the same warm board right after it (agent installed, probe
    remembered): medians of `reps` pairs, and their ratios."""
    d = work / f"commands-{profile}"
    sim = Sim(profile, d, rx_source="ramp")
    wav = d / "short.wav"
    write_wav(wav, 0.05, 48000, 16, 2)
    env_note = os.environ.get("PYTHONDONTWRITEBYTECODE")
    try:
        link.install(sim.path)
        cmds = {
            "i2s play -q (50 ms file)": [*I2S, "play", "-q", "-p", sim.path, str(wav)],
            "i2s record -q -d 0.1s": [*I2S, "record", "-q", "-d", "0.1s", "-r", "16000", "-b", "16",
                                      "-p", sim.path, str(d / "rec.wav")],
            "i2s info --no-probe": [*I2S, "info", "--no-probe", "-p", sim.path],
            "i2s devices": [*I2S, "devices"],
            "i2s --help": [*I2S, "--help"],
        }
        for args in cmds.values():  # warm: caches, the probe remembered, pages in
            checked(run(args))
        base = [PY, "-m", "mpremote"] if not Path(MPREMOTE).exists() else [MPREMOTE]
        rows = {}
        for name, args in cmds.items():
            walls, cpus, m_walls, m_cpus = [], [], [], []
            for _ in range(reps):
                r = checked(run(args))
                m = checked(run([*base, "connect", sim.path, "exec", "pass"]))
                walls.append(r["wall"])
                cpus.append(r["cpu_self"])
                m_walls.append(m["wall"])
                m_cpus.append(m["cpu_self"])
            rows[name] = {"wall": med(walls), "cpu": med(cpus), "mpremote_wall": med(m_walls),
                          "mpremote_cpu": med(m_cpus)}
            rows[name]["wall_ratio"] = rows[name]["wall"] / rows[name]["mpremote_wall"]
            rows[name]["cpu_ratio"] = rows[name]["cpu"] / rows[name]["mpremote_cpu"]
            log(f"commands {profile} {name}: wall {rows[name]['wall'] * 1000:.0f} ms "
                f"({rows[name]['wall_ratio']:.2f}x), CPU {rows[name]['cpu'] * 1000:.0f} ms "
                f"({rows[name]['cpu_ratio']:.2f}x)")
        # a warm play in parts: the interpreter, numpy + soundfile's import (soundfile
        # imports numpy whatever it is asked), and the rest: i2s's own work, against mpremote's
        interp = med([checked(run([PY, "-c", "pass"]))["wall"] for _ in range(reps)])
        heavy = med([checked(run([PY, "-c", "import numpy, soundfile"]))["wall"] for _ in range(reps)])
        play = rows["i2s play -q (50 ms file)"]
        rest = play["wall"] - heavy
        # of which the audio's own time: the 50 ms file, then the DMA's last halves (docs/protocol.md,
        # the end of a play: about three halves of 32 frames) before play returns
        playout = 0.05 + 3 * 32 / 48000
        split = {"interpreter": interp, "numpy_soundfile_import": heavy - interp, "rest": rest,
                 "mpremote_wall": play["mpremote_wall"], "rest_ratio": rest / play["mpremote_wall"],
                 "audio_playout": playout, "rest_less_playout_ratio": (rest - playout) / play["mpremote_wall"]}
        log(f"commands {profile} play split: interpreter {interp * 1000:.0f} ms, numpy+soundfile "
            f"{(heavy - interp) * 1000:.0f} ms, the rest {rest * 1000:.0f} ms ({split['rest_ratio']:.2f}x mpremote)")
    finally:
        sim.stop()
    return {"profile": profile, "reps": reps, "rows": rows, "play_split": split, "PYTHONDONTWRITEBYTECODE": env_note}


INPROC_SCRIPT = """
import sys, time, json, numpy as np, i2scli
x = np.zeros((int(0.05 * 48000), 2), np.int16)
x[:, 0] = 1000
reps = int(sys.argv[2])
t0 = time.monotonic()
with i2scli.open(sys.argv[1]) as board:
    opened = time.monotonic() - t0
    walls = []
    for _ in range(reps):
        t = time.monotonic()
        board.play(x, 48000)
        walls.append(time.monotonic() - t)
print(json.dumps({"open": opened, "plays": walls}))
"""


def fig_inproc(work: Path, profile: str = "rp2", reps: int = 7) -> dict:
    """Short plays from Python: `reps` plays of 50 ms on one `i2scli.open` connection against
    `reps` whole `i2s play -q` commands of the same audio, same warm board, side by side."""
    d = work / f"inproc-{profile}"
    sim = Sim(profile, d)
    wav = d / "short.wav"
    write_wav(wav, 0.05, 48000, 16, 2)
    try:
        link.install(sim.path)
        cmd = [*I2S, "play", "-q", "-p", sim.path, str(wav)]
        checked(run(cmd))  # warm: the probe remembered, pages in
        sub = [checked(run(cmd))["wall"] for _ in range(reps)]
        r = checked(run([PY, "-c", INPROC_SCRIPT, sim.path, str(reps)]))
        got = json.loads(r["stdout"].splitlines()[-1])
    finally:
        sim.stop()
    inproc = med(got["plays"][1:] or got["plays"])  # the first pays the coder/probe once
    out = {"profile": profile, "reps": reps, "subprocess_play_s": med(sub), "inproc_play_s": inproc,
           "inproc_open_s": got["open"], "inproc_plays_s": got["plays"], "ratio": med(sub) / inproc}
    log(f"inproc {profile}: a 50 ms play in-process {inproc * 1000:.0f} ms against a whole `i2s play` "
        f"{med(sub) * 1000:.0f} ms ({out['ratio']:.1f}x faster); open {got['open'] * 1000:.0f} ms")
    return out


# ------------------------------------------------------------------------------------------------
# the report
def _fmt_rate(x):
    return "unlimited" if x is None else f"{x / 1e6:.2f} MB/s" if x >= 1e6 else f"{x / 1e3:.1f} kB/s"


def verdict(ok) -> str:
    return "n/a" if ok is None else "**met**" if ok else "**MISSED**"


def report(res: dict) -> str:
    lines = ["| # | figure | measured | target | |", "|---|---|---|---|---|"]
    targets = {}

    def add(num, name, value, target, ok):
        targets[f"{num}:{name}"] = ok
        lines.append(f"| {num} | {name} | {value} | {target} | {verdict(ok)} |")

    f = res.get("link")
    if f:
        add(1, "link efficiency, play (Agent.play / bare pump in)",
            f"{f['play_ratio']:.2f} ({_fmt_rate(f['play_rate_median'])} / {_fmt_rate(f['pump_up_rate_median'])})",
            "≥ 0.8", f["play_ratio"] >= 0.8)
        add(1, "link efficiency, record (Agent.record / bare pump out)",
            f"{f['record_ratio']:.2f} ({_fmt_rate(f['record_rate_median'])} / "
            f"{_fmt_rate(f['pump_down_rate_median'])})", "≥ 0.8", f["record_ratio"] >= 0.8)
    f = res.get("mpremote")
    if f:
        for p, v in f.items():
            add(2, f"`i2s play` vs `mpremote fs cp`, {p}, {v['bytes'] / 1e6:.2f} MB, whole commands",
                f"{v['ratio']:.1f}x ({v['mpremote_cp_s']:.2f} s / {med(v['i2s_play_s']):.2f} s); start-up "
                f"taken out: ≈{v['ratio_no_startup']:.0f}x ({_fmt_rate(v['i2s_rate_no_startup'])} vs "
                f"{_fmt_rate(v['mpremote_rate_no_startup'])})", "≥ 20x", v["ratio"] >= 20)
    f = res.get("ttfs")
    if f:
        for p, v in f["profiles"].items():
            base = v["mpremote_exec_pass_s"] * 1000
            uart = ttfs_baud(p) is not None  # a UART board: the upload at the raised rate
            add(3, f"time to first sample, cold, {p} / mpremote exec pass",
                f"{v['cold_ratio']:.1f}x ({v['cold_ttfs_s'] * 1000:.0f} ms / {base:.0f} ms)",
                "≤ 6" if uart else "—", v["cold_ratio"] <= 6 if uart else None)
            add(3, f"time to first sample, warm, {p} / mpremote exec pass",
                f"{v['warm_ratio']:.1f}x ({v['warm_ttfs_s'] * 1000:.0f} ms / {base:.0f} ms); "
                f"with --no-probe {v['warm_no_probe_ratio']:.1f}x", "≤ 1.5", v["warm_ratio"] <= 1.5)
            for kind, goal in (("cold", 5), ("warm", 2)):  # the UART board's whole command
                if v.get(f"{kind}_whole_ratio") is not None:
                    add(3, f"whole `i2s play`, {kind}, {p} / mpremote exec pass",
                        f"{v[f'{kind}_whole_ratio']:.1f}x ({v[f'{kind}_whole_s'] * 1000:.0f} ms / {base:.0f} ms)",
                        f"≤ {goal}" if uart else "—", v[f"{kind}_whole_ratio"] <= goal if uart else None)
    f = res.get("link")
    if f:
        for m in ("play", "record"):
            h = f["heap"][m]
            add(4, f"board heap per frame, {m} (fast)",
                f"{h['heap_alloc']} B over {h['heap_frames']} audio frames ({h['data_frames']} DATA frames)",
                "0", h["heap_alloc"] == 0)
    f = res.get("fits")
    if f:
        n = sum(p["heap_runs"] for p in f["profiles"].values())
        bad = [h for p in f["profiles"].values() for h in p["heap_nonzero"]]
        where = ", ".join(f"{p} {h['mode']} {h['stream']}: {h['heap_alloc']} B / {h['heap_frames']} frames"
                          for p, v in f["profiles"].items() for h in v["heap_nonzero"])
        add(4, "board heap per frame, the runs of figure 8 (all profiles)",
            f"{len(bad)} of {n} runs allocated" + (f" ({where})" if where else ""), "0", not bad)
    f = res.get("hostmem")
    if f:
        for m in ("play", "record"):
            v = f[m]
            add(5, f"peak RSS of `i2s {m}`, {f['seconds']['long']:g} s / {f['seconds']['short']:g} s",
                f"{v['rss_ratio']:.3f} ({v['long']['maxrss_kb'] / 1024:.1f} / "
                f"{v['short']['maxrss_kb'] / 1024:.1f} MiB)",
                "≤ 1.1", v["rss_ratio"] <= 1.1)
        for m in ("play", "record"):
            v = f[m]
            add(6, f"host CPU per audio second, `i2s {m}` 48k/32/stereo",
                f"{v['cpu_per_audio_s'] * 100:.2f}% of a core (with start-up: "
                f"{v['cpu_per_audio_s_incl_startup'] * 100:.1f}%)", "≤ 5%", v["cpu_per_audio_s"] <= 0.05)
    f = res.get("duplex")
    if f:
        add(7, f"duplex overhead, last RX → first TX audio − (delay + lead-in), {f['profile']}",
            f"max {f['overhead_us_max'] / 1000:.2f} ms, median {f['overhead_us_median'] / 1000:.2f} ms "
            f"over {len(f['switches'])} switches", "≤ 1 ms",
            None if f["overhead_us_max"] is None else f["overhead_us_max"] <= 1000)
    f = res.get("fits")
    if f:
        for p, v in f["profiles"].items():
            nom, got = v["link_nominal"], v["link_probe"]
            if nom.get("up") and nom.get("down"):  # rate-limited links only
                worst = min(got["up"] / nom["up"], got["down"] / nom["down"])
                add(8, f"protocol efficiency, {p}" + (f" at {v['baud']} baud" if v.get("baud") else "")
                    + " (probed / link's byte rate, worse direction)",
                    f"{worst:.2f} (up {_fmt_rate(got['up'])} / {_fmt_rate(nom['up'])}, "
                    f"down {_fmt_rate(got['down'])} / {_fmt_rate(nom['down'])})", "≥ 0.9", worst >= 0.9)
    f = res.get("commands")
    if f:
        targets_9 = {"i2s play -q (50 ms file)": (1.5, 2.0)}
        for name, v in f["rows"].items():
            wall_t, cpu_t = targets_9.get(name, (None, None))
            cpu_abs = name in ("i2s devices", "i2s --help")
            target = (f"≤ {wall_t}x wall, ≤ {cpu_t}x CPU" if wall_t else "CPU < 0.25 s" if cpu_abs else "—")
            ok = (v["wall_ratio"] <= wall_t and v["cpu_ratio"] <= cpu_t) if wall_t else \
                (v["cpu"] < 0.25 if cpu_abs else None)
            add(9, f"whole command, warm {f['profile']}: `{name}` / `mpremote exec pass`",
                f"wall {v['wall'] * 1000:.0f} / {v['mpremote_wall'] * 1000:.0f} ms = {v['wall_ratio']:.2f}x, "
                f"CPU {v['cpu'] * 1000:.0f} / {v['mpremote_cpu'] * 1000:.0f} ms = {v['cpu_ratio']:.2f}x",
                target, ok)
        sp = f.get("play_split")
        if sp:
            add(9, f"warm `i2s play` in parts, {f['profile']}: interpreter + numpy/soundfile import, and the rest "
                   "/ `mpremote exec pass`",
                f"{sp['interpreter'] * 1000:.0f} + {sp['numpy_soundfile_import'] * 1000:.0f} ms, the rest "
                f"{sp['rest'] * 1000:.0f} / {sp['mpremote_wall'] * 1000:.0f} ms = {sp['rest_ratio']:.2f}x (of it "
                f"{sp['audio_playout'] * 1000:.0f} ms the audio playing out; without it "
                f"{sp['rest_less_playout_ratio']:.2f}x)", "the rest ≤ 1.0x", sp["rest_ratio"] <= 1.0)
    f = res.get("inproc")
    if f:
        add(14, f"a 50 ms play from Python, warm {f['profile']}: whole `i2s play -q` / `Device.play` on one connection",
            f"{f['ratio']:.1f}x ({f['subprocess_play_s'] * 1000:.0f} ms / {f['inproc_play_s'] * 1000:.0f} ms; "
            f"open {f['inproc_open_s'] * 1000:.0f} ms once)", "—", None)
    f = res.get("compress")
    if f:
        for p, v in f["profiles"].items():
            for c in ("speech", "music"):
                r = v["runs"][c]
                ok = r["rc"] == 0 and r.get("underruns") == 0
                add(10, f"48 kHz 16-bit stereo {c}, `i2s play` on {p}", _run_cell(r),
                    "plays, 0 xruns" if p in ("rp2", "mimxrt") else "—", ok if p in ("rp2", "mimxrt") else None)
            ratios = {c: v["rows"][-3][c]["ratio"] for c in CONTENTS}
            add(10, f"compression ratio, 48k/16/st, {p} frames", ", ".join(f"{c} {x:.2f}" for c, x in ratios.items()),
                "≥ 1.5 speech/music; noise raw", ratios["speech"] >= 1.5 and ratios["music"] >= 1.5)
    f = res.get("fit")
    if f:
        v = f["contents"]["song"]
        ok = v["rc"] == 0 and v["rate"] == f["rate"] and v["channels"] == 2 and v["underruns"] == 0 \
            and v["fit"]["snr_db"] is not None and v["fit"]["snr_db"] >= 45
        played = (f"{v['fit']['method']} at {v['rate']} Hz, {v['underruns']} xruns, {v['fit']['snr_db']:.1f} dB SNR"
                  if v["rc"] == 0 else f"exit {v['rc']}")
        add(11, f"44.1 kHz 16-bit stereo song (noise floor 46 dB under), `i2s play --fit` on {f['spec']}", played,
            "44.1 kHz stereo, 0 xruns, SNR ≥ 45 dB", ok)
    f = res.get("coder_cost")
    if f and "sizes" in f:
        for op, size, target, what in (("decode", 244, 0.15, "rp2 play"), ("decode", 116, None, "esp32 play"),
                                       ("encode", 4096, 0.30, "every record")):
            r = f["sizes"][size][op]
            cpi = f["trace"][op]["cpi"]
            share = r["instr_per_audio_s"] * cpi / (f["mhz"] * 1e6)
            add(13, f"board {op}r, 48k/16/st song, {size} B frames ({what}), armv6m on qemu",
                f"{r['instr_per_audio_s'] / 1e6:.1f} M instructions / audio s = {share:.1%} of a {f['mhz']:.0f} MHz "
                f"RP2040 at {cpi:.2f} cycles/instruction (traced)",
                f"≤ {target:.0%}" if target else "—", share <= target if target else None)
    elif f:
        add(13, "board coder cost (qemu)", f["skipped"], "—", None)
    out = "\n".join(lines)
    f = res.get("coder_cost")
    if f and "sizes" in f:
        out += "\n\n" + coder_cost_table(f)
    for key, table in (("fit", fit_table), ("test_format", test_format_table), ("fits", fits_table),
                       ("compress", compress_table)):
        if res.get(key):
            out += "\n\n" + table(res[key])
    res["targets"] = targets
    return out


def fits_table(f: dict) -> str:
    profs = list(f["profiles"])
    head = "| stream | " + " | ".join(profs) + " |"
    lines = [f"What fits (8): play/record with zero underruns and overruns ({f['method']}). P = play fits, "
             f"R = record fits, · = does not; * = a real {f['seconds']:g} s run decided it (else the link probe "
             f"did), ! = the real run disagreed with the probe's prediction.", "", head,
             "|---|" + "---|" * len(profs)]

    def cell(row):
        parts = []
        for mode, letter in (("tx", "P"), ("rx", "R")):
            m = row[mode]
            parts.append((letter if m["fits"] else "·") + ("*" if "measured" in m else "")
                         + ("!" if m["agrees"] is False else ""))
        return " ".join(parts)
    for i, (rate, bits, ch) in enumerate(STREAMS):
        lines.append(f"| {stream_name(rate, bits, ch)} | "
                     + " | ".join(cell(f["profiles"][p]["rows"][i]) for p in profs) + " |")
    lines.append("| link up: nominal / probed | " + " | ".join(
        f"{_fmt_rate(f['profiles'][p]['link_nominal']['up'])} / {_fmt_rate(f['profiles'][p]['link_probe']['up'])}"
        for p in profs) + " |")
    lines.append("| link down: nominal / probed | " + " | ".join(
        f"{_fmt_rate(f['profiles'][p]['link_nominal']['down'])} / {_fmt_rate(f['profiles'][p]['link_probe']['down'])}"
        for p in profs) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    ap.add_argument("--full", action="store_true", help="figure 8: a real 30 s run of every stream (hours)")
    ap.add_argument("--only", metavar="N,N", help="only these figures (1-14; 4 comes with 1 and 8, 6 with 5)")
    ap.add_argument("--profiles", metavar="P,P", default=",".join(PROFILE_ORDER), help="profiles for figure 8")
    ap.add_argument("--seconds", type=float, help="figure 8 run length (default 3, --full 30)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of figures 1 and 3")
    ap.add_argument("--long", type=float, default=50.0, help="figure 5/6 long run, seconds (short = long/100)")
    ap.add_argument("--out", metavar="FILE", default=str(RESULTS / "latest.json"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory (captures, events)")
    a = ap.parse_args(argv)
    only = {int(x) for x in a.only.split(",")} if a.only else set(range(1, 15))
    profiles = [p for p in a.profiles.split(",") if p]
    seconds = a.seconds or (30.0 if a.full else 3.0)
    work = Path(tempfile.mkdtemp(prefix="i2s-bench-"))
    t_start = time.monotonic()
    res: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv[1:],
                 "host": {"python": platform.python_version(), "machine": platform.machine(),
                          "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}}
    steps = [(1, "link", lambda: fig_link(work, a.reps, 16)),
             (2, "mpremote", lambda: fig_mpremote(work, {"fast": 30 * 44100 * 4, "rp2": 256 << 10})),
             (3, "ttfs", lambda: fig_ttfs(work, ["fast", "rp2", "esp32"], a.reps)),
             (5, "hostmem", lambda: fig_host(work, a.long / 100, a.long)),
             (7, "duplex", lambda: fig_duplex(work)),
             (8, "fits", lambda: fig_fits(work, profiles, seconds, a.full)),
             (9, "commands", lambda: fig_commands(work, "rp2", max(a.reps, 7))),
             (10, "compress", lambda: fig_compress(work, ["rp2", "mimxrt", "esp32:cp2102", "esp32:ch340"],
                                                   seconds)),
             (11, "fit", lambda: fig_fit(work)),
             (12, "test_format", lambda: fig_test_format(work, a.reps)),
             (13, "coder_cost", lambda: fig_coder_cost()),
             (14, "inproc", lambda: fig_inproc(work, "rp2", max(a.reps, 7)))]
    try:
        for num, key, fn in steps:
            if num not in only and not (num == 1 and 4 in only) and not (num == 5 and 6 in only):
                continue
            log(f"figure {num}: {key}")
            t = time.monotonic()
            try:
                res[key] = fn()
            except Exception as e:  # one broken figure must not lose the others
                import traceback

                traceback.print_exc()
                res[key + "_error"] = f"{type(e).__name__}: {e}"
            res.setdefault("durations_s", {})[key] = round(time.monotonic() - t, 1)
    finally:
        res["duration_s"] = round(time.monotonic() - t_start, 1)
        res["host"]["loadavg_end"] = os.getloadavg()
        if not a.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        else:
            res["work"] = str(work)
    table = report(res)
    res["table"] = table
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1, default=str) + "\n")
    print(table)
    print(f"\n(bench ran {res['duration_s']:.0f} s; load average {res['host']['loadavg_start'][0]:.1f} at start, "
          f"{res['host']['loadavg_end'][0]:.1f} at end; results in {a.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
