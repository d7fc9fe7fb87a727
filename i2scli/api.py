"""i2s from Python, on any port URL `-p` takes: each call runs the real command line with
`--json` and returns what it prints, parsed.

    from i2scli.api import Board, I2SError
    board = Board("rfc2217://rig:4000")            # or sim://fast?loopback=0%3E1, /dev/ttyACM0, labgrid://rig1
    board.info()                                   # dict, as `i2s info --json`
    board.play("tone.wav", rate=16000)             # options as keywords: rate=16000 -> --rate 16000
    board.record("out.wav", duration="2s")
    result = board.test(rate=16000, bits=16, channels=1)   # result["passed"]; a failed check is a result, not an error

A command that fails raises I2SError with its one-line message and exit code (README's table).
"""

from __future__ import annotations

import json
import subprocess
import sys


class I2SError(Exception):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _options(opts: dict) -> list[str]:
    out = []
    for key, value in opts.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is False or value is None:
            continue
        else:
            out += [flag, str(value)]
    return out


class Board:
    def __init__(self, port: str, timeout: float = 600):
        self.port = port
        self.timeout = timeout

    def _run(self, command: str, *args: str, ok=(0,), **opts) -> dict:
        cmd = [sys.executable, "-m", "i2scli", command, "-p", self.port, "--json", *_options(opts), *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        if r.returncode not in ok:
            lines = [x for x in r.stderr.splitlines() if x.strip()]
            raise I2SError(lines[-1] if lines else f"i2s {command} failed", r.returncode)
        return json.loads(r.stdout.splitlines()[0]) if r.stdout.strip() else {}

    def info(self, **opts) -> dict:
        return self._run("info", **opts)

    def play(self, file: str | None = None, **opts) -> dict:
        return self._run("play", *([str(file)] if file is not None else []), **opts)

    def record(self, file: str, **opts) -> dict:
        return self._run("record", str(file), **opts)

    def test(self, **opts) -> dict:
        return self._run("test", ok=(0, 7), **opts)
