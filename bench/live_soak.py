"""Minutes of live streams through a real sound server, both ways at once (docs/pipes.md).

A private headless PulseAudio with a null sink `i2s` (as tests/e2e/test_sound_server.py starts it):
sox's tones played into it by pacat; its monitor read by `parec --raw` into `i2s play --live` on a
virtual Pico whose clock runs PPM_PLAY off; and `i2s record --live` from a second virtual Pico,
PPM_REC off, into a FIFO that pacat plays into the same sink. Prints both commands' `--json`
(`live`: drift, reserve or backlog band; xruns; frame counts) and a line of each's verdict.

    .venv/bin/python bench/live_soak.py --seconds 600 --ppm-play -300 --ppm-rec 300
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

I2S = [sys.executable, "-m", "i2scli"]
RATE = 16000


def start_pulse(d: Path) -> tuple[subprocess.Popen, dict]:
    run = d / "run"
    run.mkdir(mode=0o700)
    sock = run / "native"
    env = {**os.environ, "HOME": str(d), "XDG_RUNTIME_DIR": str(run), "PULSE_RUNTIME_PATH": str(run / "pulse")}
    env.pop("PULSE_SERVER", None)
    server = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm=yes", "--use-pid-file=no",
         "-L", "module-null-sink sink_name=i2s rate=48000 channels=2",
         "-L", f"module-native-protocol-unix auth-anonymous=1 socket={sock}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env["PULSE_SERVER"] = f"unix:{sock}"
    deadline = time.monotonic() + 20
    while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("PulseAudio did not start")
        time.sleep(0.1)
    return server, env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--ppm-play", type=float, default=-300)
    ap.add_argument("--ppm-rec", type=float, default=300)
    a = ap.parse_args()
    for tool in ("pulseaudio", "pactl", "parec", "pacat", "sox"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed")
    with tempfile.TemporaryDirectory(prefix="i2s-live-soak-") as tmp:
        d = Path(tmp)
        server, env = start_pulse(d)
        procs: list[subprocess.Popen] = []
        try:
            raw = ["--raw", "--format=s16le", f"--rate={RATE}", "--channels=2", "--latency-msec=20"]
            sox = subprocess.Popen(["sox", "-n", "-t", "raw", "-r", str(RATE), "-c", "2", "-b", "16", "-e", "signed",
                                    "-", "synth", str(a.seconds + 30), "sine", "997", "sine", "1499", "vol", "0.5"],
                                   stdout=subprocess.PIPE)
            tones = subprocess.Popen(["pacat", "--playback", "-d", "i2s", *raw], stdin=sox.stdout, env=env)
            sox.stdout.close()
            procs += [sox, tones]
            parec = subprocess.Popen(["parec", "-d", "i2s.monitor", *raw], stdout=subprocess.PIPE, env=env)
            play = subprocess.Popen([*I2S, "play", "-q", "--json", "--live", "-t", "raw", "-r", str(RATE), "-c", "2",
                                     "-b", "16", "-p", f"sim://rp2?clock_ppm={a.ppm_play:g}", "-"],
                                    stdin=parec.stdout, stdout=subprocess.PIPE, text=True, env=env)
            parec.stdout.close()
            procs += [parec, play]
            fifo = d / "rec.fifo"
            os.mkfifo(fifo)
            sink = subprocess.Popen(["pacat", "--playback", "-d", "i2s", *raw, str(fifo)], env=env)
            procs.append(sink)
            rec = subprocess.run([*I2S, "record", "-q", "--json", "--live", "-t", "raw", "-r", str(RATE), "-c", "2",
                                  "-b", "16", "-d", f"{a.seconds:g}s",
                                  "-p", f"sim://rp2?clock_ppm={a.ppm_rec:g}&rx_source=sine:997", str(fifo)],
                                 capture_output=True, text=True, env=env)
            sink.wait(timeout=30)
            parec.terminate()
            out, _ = play.communicate(timeout=120)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            server.terminate()
            server.wait(timeout=10)
    p = json.loads(out.splitlines()[0])
    r = json.loads(rec.stdout)
    print(json.dumps({"play": p, "record": r}, indent=1))
    pl, rl = p["live"], r["live"]
    print(f"play   board {a.ppm_play:+g} ppm: drift {pl['drift_ppm']:+.1f} ppm, reserve {pl['fill_band_ms']} ms, "
          f"{p['underruns']} underruns, {p['overruns']} overruns, {p['frames']} frames")
    print(f"record board {a.ppm_rec:+g} ppm: drift {rl['drift_ppm']:+.1f} ppm, backlog {rl['fill_band_ms']} ms, "
          f"{r['overruns']} overruns; board frames {r['board']['frames']} = taken {rl['source_frames']} + skipped "
          f"{rl['skipped_frames']}: {rl['source_frames'] + rl['skipped_frames'] == r['board']['frames']}")


if __name__ == "__main__":
    main()
