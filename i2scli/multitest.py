"""`i2s test -p A -p B ...`: every board tested at once, each by its own `i2s test --json`
process (nothing in i2s assumes it is alone, except on its own port), then one verdict per
board, one JSON object {port: result}, one JUnit file with a testsuite per board.

Exit code: 0 when every board passed; 7 (Exit.CHECK) when a check failed on any board; else
the highest code any board ended with (1 file, 3 no device, 4 the board cannot, 5 link,
130 interrupted). docs/test.md, "Many boards"."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from i2scli.errors import Exit

_ERROR = "i2s: error: "


def board_path(path: str, index: int) -> str:
    """A per-board file name for --plot or --save-recording: `out.png` -> `out-2.png` (1-based)."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{index}{p.suffix}"))


def exit_code(codes: list[int]) -> int:
    """0 when every board passed, 7 when any check failed, else the highest other code."""
    if all(c == 0 for c in codes):
        return 0
    if Exit.CHECK in codes:
        return int(Exit.CHECK)
    return max(codes)


def _result(port: str, code: int, out: str, err: str) -> dict:
    line = out.splitlines()[0] if out.strip() else ""
    try:
        res = json.loads(line)
    except ValueError:
        res = None
    if not isinstance(res, dict):
        errors = [ln[len(_ERROR):] for ln in err.splitlines() if ln.startswith(_ERROR)]
        why = errors[-1] if errors else (err.strip().splitlines() or [f"i2s test ended with exit {code}"])[-1]
        res = {"action": "test", "port": port, "passed": False, "error": why}
    res["exit"] = code
    return res


def run(ports: list[str] | dict[str, list[str]], args: list[str], per_board: dict[str, str]) -> tuple[dict, int]:
    """Run `i2s test --json -q -p PORT *args` for each port at once (or, for a dict, `i2s test
    --json -q WHICH *args` for each {name: WHICH}: a rig's board is `--rig FILE --board-name
    NAME`); `per_board` maps an option (--plot) to a file name made per board (board_path).
    Returns ({port or name: result}, exit code)."""
    which = ports if isinstance(ports, dict) else {port: ["-p", port] for port in ports}
    procs = []
    with tempfile.TemporaryDirectory(prefix="i2s-test-") as tmp:
        for i, (port, selects) in enumerate(which.items(), 1):
            cmd = [sys.executable, "-m", "i2scli", "test", "--json", "-q", *selects, *args]
            for opt, path in per_board.items():
                cmd += [opt, board_path(path, i)]
            out, err = Path(tmp, f"{i}.out"), Path(tmp, f"{i}.err")
            with open(out, "w") as o, open(err, "w") as e:
                # its own session: a Ctrl-C reaches each board once, through us (below)
                procs.append((port, out, err, subprocess.Popen(cmd, stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                                                                start_new_session=True)))
        signals = [signal.SIGTERM, signal.SIGHUP]
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signals.append(signal.SIGINT)

        def forward(signum, frame):
            for *_, p in procs:
                if p.poll() is None:
                    p.send_signal(signum)

        old = {s: signal.signal(s, forward) for s in signals}
        try:
            for *_, p in procs:
                while True:
                    try:
                        p.wait()
                        break
                    except KeyboardInterrupt:  # pragma: no cover - forward() handles SIGINT
                        forward(signal.SIGINT, None)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        results = {}
        for port, out, err, p in procs:
            err_text = err.read_text(errors="replace")
            for ln in err_text.splitlines():  # the board's own errors and warnings, said which board
                if ln.strip():
                    print(f"[{port}] {ln}", file=sys.stderr, flush=True)
            results[port] = _result(port, p.returncode, out.read_text(errors="replace"), err_text)
    return results, exit_code([r["exit"] for r in results.values()])
