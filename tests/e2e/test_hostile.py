"""The real `i2s` command line against boards and endpoints that lie (tests/e2e/hostile_board.py):
every field they send is checked (exit 5, one line naming the field and the board), their
text reaches the terminal with its control characters made visible, endless output ends in
a bounded time and memory, signals end any command at once, and nothing but i2s's own output
reaches stdout (docs/reliability.md, "A hostile or broken board")."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from conftest import ENV, I2S, mpremote, peak_rss_run
from hostile_board import DROP, FloodingRfc2217, HostileBoard, NoiseServer

pytestmark = pytest.mark.slow  # every test here takes 1 s or more on a loaded 2-core machine

RECORD = ["record", "-q", "--no-probe", "-r", "16000", "-b", "16", "-c", "2", "-s", "3000"]
PLAY = ["play", "-q", "--no-probe", "--tone", "440", "-d", "0.3s"]


@pytest.fixture
def board():
    made: list[HostileBoard] = []

    def make(**lies) -> HostileBoard:
        b = HostileBoard(**lies)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def run(*args, timeout: float = 60, stdin=subprocess.DEVNULL) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    r = subprocess.run([*I2S, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV,
                       stdin=stdin)
    return r, time.monotonic() - t0


def one_line(r: subprocess.CompletedProcess, code: int, *words: str) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == code, (r.returncode, r.stderr)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("i2s: error:")]
    assert len(errors) == 1, r.stderr
    line = errors[0]
    assert line.isprintable(), line
    for w in words:
        assert w in line, (w, line)
    return line


# =============================================================================================
# every field checked where it is parsed: exit 5, naming the field and the board

FIELD_CASES = [
    # (lies, command, field)
    ({"hello": {"inbuf": "4096"}}, PLAY, "inbuf"),
    ({"hello": {"inbuf": 3}}, PLAY, "inbuf"),
    ({"hello": {"codec": "1"}}, PLAY, "codec"),
    ({"hello": {"machine": ["a", "list"]}}, PLAY, "machine"),
    ({"hello": {"crc": "yes"}}, RECORD, "crc"),
    ({"ready": {"window": "4096"}}, PLAY, "window"),
    ({"ready": {"window": -5}}, PLAY, "window"),  # a negative credit
    ({"ready": {"payload": "1024"}}, RECORD, "payload"),
    ({"ready": {"payload": 0}}, PLAY, "payload"),
    ({"ready": {"frame_bytes": "4"}}, RECORD, "frame_bytes"),
    ({"ready": {"prefill": "0"}}, RECORD, "prefill"),
    ({"ready": {"window": DROP}}, RECORD, "window"),
    ({"ready": {"code": 1}}, RECORD, "code"),  # coded data never asked for
    ({"summary": {"frames": "3000"}}, RECORD, "frames"),
    ({"summary": {"underruns": [1]}}, RECORD, "underruns"),
    ({"summary": {"overruns": -1}}, RECORD, "overruns"),
    ({"summary": {"timeline": "x"}}, RECORD, "timeline"),
    ({"summary": {"reason": {"a": 1}}}, PLAY, "reason"),
    ({"summary": {"port_xruns": {"underruns": "9"}}}, PLAY, "port_xruns"),
    ({"summary": {"heap_alloc": 1.5}}, PLAY, "heap_alloc"),
    ({"probe": {"up_bytes": DROP}}, ["info"], "up_bytes"),
    ({"probe": {"up_us": "10"}}, ["info"], "up_us"),
]


@pytest.mark.parametrize("lies,cmd,field", FIELD_CASES, ids=[f"{c[0]}-{c[2]}" for c in FIELD_CASES])
def test_a_bad_field_is_the_boards_fault(board, tmp_path, lies, cmd, field):
    b = board(**lies)
    args = [*cmd, "-p", b.path] + ([tmp_path / "r.wav"] if cmd is RECORD else [])
    r, _ = run(*args)
    line = one_line(r, 5, f"`{field}`", b.path)
    assert line.count("\n") == 0


def test_data_not_whole_frames_is_the_boards_fault(board, tmp_path):
    b = board(data_bytes=1023)  # 16-bit stereo: 4-byte frames
    r, _ = run(*RECORD, "-p", b.path, tmp_path / "r.wav")
    one_line(r, 5, "DATA", "1023", b.path)


def test_an_honest_fake_board_works(board, tmp_path):
    """The fixture itself: record, play and info (with the probe) succeed on a board that does not lie."""
    b = board()
    r, _ = run(*RECORD, "-p", b.path, tmp_path / "r.wav")
    assert r.returncode == 0, r.stderr
    import soundfile as sf

    assert sf.info(str(tmp_path / "r.wav")).frames == 3000
    r, _ = run(*PLAY, "-p", b.path)
    assert r.returncode == 0, r.stderr
    r, _ = run("info", "--json", "-p", b.path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["link"]["up_bytes_per_s"] > 0


# =============================================================================================
# board text made visible before it reaches a terminal

ESCAPES = "\x1b]0;PWNED\x07\x1b[2J\x1b[31m"


@pytest.mark.parametrize("cmd", [["info", "--no-probe"], ["info", "--no-probe", "--json"], ["record"]])
def test_board_text_reaches_the_terminal_visible(board, tmp_path, cmd):
    b = board(hello={"machine": "Pico" + ESCAPES + "\r\nfake line", "micropython": "1.28\x1b[2J",
                     "agent": "x\x07y"})
    args = [*cmd, "-p", b.path]
    if cmd == ["record"]:
        args = [*RECORD[:-2], "-s", "100", "-p", b.path, tmp_path / "r.wav"]
        args.remove("-q")  # the lines that name the board
    r, _ = run(*args)
    assert r.returncode == 0, r.stderr
    for out in (r.stdout, r.stderr):
        assert "\x1b" not in out and "\x07" not in out and "\r" not in out, repr(out)
    shown = r.stdout if cmd[0] == "info" else r.stderr
    if "--json" in cmd:  # JSON carries the text as it came, escaped by JSON itself
        assert json.loads(r.stdout)["machine"] == "Pico" + ESCAPES + "\r\nfake line"
    else:
        assert "Pico\\x1b]0;PWNED\\x07" in shown, shown


# =============================================================================================
# no output on stdout but ours


def test_no_raw_repl_leaves_stdout_clean(board, tmp_path):
    """mpremote prints what it read when the raw REPL cannot be entered: not into our JSON."""
    b = board(mute_repl=True)
    r, _ = run("info", "--json", "-p", b.path)
    one_line(r, 5, "raw REPL")
    assert r.stdout == ""


# =============================================================================================
# endless output: bounded in time and memory


def bounded(r: subprocess.CompletedProcess, rss: float, secs: float, *words: str) -> None:
    """One line, exit 5, within a bounded time and memory."""
    one_line(r, 5, *words)
    assert secs < 40, secs
    assert rss < 200, f"{rss:.0f} MB"


@pytest.mark.parametrize("cmd", ["info", "record"])
def test_a_board_that_talks_forever_is_not_an_agent(board, tmp_path, cmd):
    """A program with Ctrl-C off printing in a loop: i2s gives up within its timeout (10 s to
    connect, a few tries), exit 5, one line; it never waits on the board's output."""
    b = board(talk=b"hello from a program that ignores Ctrl-C\r\n")
    args = ["info"] if cmd == "info" else ["record", "-q", "-d", "1s", "-"]
    r, rss, secs = peak_rss_run([*args, "-p", b.path])
    bounded(r, rss, secs, "did not answer Ctrl-C")
    assert r.stdout == ""


@pytest.mark.parametrize("server", [NoiseServer, FloodingRfc2217], ids=["socket-noise", "rfc2217-flood"])
def test_an_endpoint_flooding_random_bytes_keeps_memory_bounded(tmp_path, server):
    endpoint = server()
    try:
        r, rss, secs = peak_rss_run(["info", "-p", endpoint.url])
    finally:
        endpoint.close()
    bounded(r, rss, secs)


# =============================================================================================
# signals end any command within a second, whatever it waits on


def _signalled(args, sig, after: float, stdin=None) -> tuple[subprocess.CompletedProcess, float]:
    """Start i2s, send `sig` after `after` s; (result, seconds from the signal to the exit)."""
    p = subprocess.Popen([*I2S, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=ENV, stdin=stdin if stdin is not None else subprocess.DEVNULL)
    time.sleep(after)
    assert p.poll() is None, p.communicate()
    p.send_signal(sig)
    t0 = time.monotonic()
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"still running 20 s after {sig.name}: {err[-300:]}")
    return subprocess.CompletedProcess(args, p.returncode, out, err), time.monotonic() - t0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_while_play_waits_on_its_input(sim, sig):
    """`sleep 30 | i2s play -` : the signal ends it at once; the board answers mpremote after."""
    b = sim("rp2", capture=False, events=False)
    feeder = subprocess.Popen(["sleep", "30"], stdout=subprocess.PIPE)
    try:
        r, secs = _signalled(["play", "-q", "-p", b.path, "-"], sig, 1.5, stdin=feeder.stdout)
    finally:
        feeder.kill()
        feeder.wait()
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert secs < 3, secs
    assert "ok" in mpremote("connect", b.path, "exec", "print('ok')").stdout.decode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_during_the_handshake_with_a_talking_board(board, sig):
    b = board(talk=b"tick\r\n")
    r, secs = _signalled(["info", "-p", b.path], sig, 2.0)
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stdout == ""
    assert secs < 3, secs


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_while_a_stream_waits_on_a_silent_board(board, tmp_path, sig):
    """The board stops sending mid-stream and never ends it: the signal still ends i2s, the
    audio that came kept in a valid file."""
    b = board(no_summary=True)
    out = tmp_path / "r.wav"
    r, secs = _signalled([*RECORD[:-2], "-d", "60s", "--timeout", "30s", "-p", b.path, out], sig, 2.0)
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert secs < 3, secs
    import soundfile as sf

    assert sf.info(str(out)).frames > 0


def test_a_real_board_printing_forever_with_ctrl_c_off(sim, tmp_path):
    """The same on the virtual board (real MicroPython): main.py turns Ctrl-C off and prints in
    a loop. `i2s info` and `i2s record -` give up within their timeout, stdout empty."""
    from test_reliability import _board_with_main

    b = _board_with_main(sim, tmp_path, "import micropython\nmicropython.kbd_intr(-1)\n"
                                        "while True:\n    print('tick')\n")
    for args in (["info", "--json"], ["record", "-q", "-d", "1s", "-"]):
        r, rss, secs = peak_rss_run([*args, "-p", b.path])
        bounded(r, rss, secs, "did not answer Ctrl-C")
        assert r.stdout == ""


def test_signal_while_the_real_board_stalls_leaves_it_usable(sim, tmp_path):
    """The virtual board stops answering mid-recording (a stall): SIGTERM still ends i2s at once,
    with what arrived kept, and once the stall is over mpremote and i2s find the board as usual."""
    b = sim("fast", "--rx-source", "ramp", "--fault", "stall:at=2s,for=8s", capture=False, events=False)
    out = tmp_path / "r.wav"
    r, secs = _signalled(["record", "-q", "-r", 16000, "-b", 16, "-c", 2, "-d", "20s", "--timeout", "10s",
                          "-p", b.path, out], signal.SIGTERM, 3.0)
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert secs < 3, secs
    import soundfile as sf

    assert sf.info(str(out)).frames > 0
    time.sleep(8)  # the stall ends (and the agent's watchdog sends it back to the REPL)
    assert "ok" in mpremote("connect", b.path, "exec", "print('ok')").stdout.decode()
    r, _ = run("record", "-q", "-s", 1000, "-p", b.path, tmp_path / "after.wav")
    assert r.returncode == 0, r.stderr
    assert sf.info(str(tmp_path / "after.wav")).frames == 1000
