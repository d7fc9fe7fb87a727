"""`i2s test` on a board behind a real ser2net (4.x, RFC 2217): the virtual board's pty served
on 127.0.0.1 as a remote serial port, as a rig would share a board on the network. Skipped,
with the reason, where ser2net is not installed (.ci/run installs the Debian package)."""

import json
import shutil
import socket
import subprocess
import time
from types import SimpleNamespace

import pytest
from conftest import i2s, stop_process

from i2scli.link import baud
from i2scli.link.port import rfc2217_url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ser2net(tmp_path):
    exe = shutil.which("ser2net") or shutil.which("ser2net", path="/usr/sbin:/sbin")
    if exe is None:
        pytest.skip("ser2net is not installed (Debian: apt-get install ser2net)")
    started = []

    def serve(device: str) -> int:
        port = _free_port()
        config = tmp_path / "ser2net.yaml"
        config.write_text(
            "%YAML 1.1\n---\n"
            "connection: &board\n"
            f"  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n"
            f"  connector: serialdev,{device},115200n81,local\n"
            "  options:\n"
            "    kickolduser: true\n"
        )
        log = open(tmp_path / "ser2net.log", "w")
        proc = subprocess.Popen([exe, "-n", "-d", "-u", "-P", str(tmp_path / "ser2net.pid"), "-c", str(config)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        started.append((proc, log))
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return port
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"ser2net did not listen on {port}: {(tmp_path / 'ser2net.log').read_text()}")
                time.sleep(0.1)

    yield serve
    for proc, log in started:
        stop_process(proc)
        log.close()


@pytest.mark.slow
def test_i2s_test_through_ser2net_rfc2217(sim, ser2net):
    board = sim("fast", "--loopback", "0>1,delay=1ms", capture=False, events=False)
    port = ser2net(board.path)
    # a modest stream: ser2net forwards in bursts, and 48 kHz 32-bit stereo is 384 kB/s each way
    r = i2s("test", "-p", f"rfc2217://127.0.0.1:{port}", "-r", "16000", "-b", "16", "-c", "1",
            "--max-latency", "2ms", "--json", check=0, timeout=90)
    res = json.loads(r.stdout.splitlines()[0])
    assert res["passed"], r.stderr
    assert res["measures"]["channels"][0]["latency_samples"] == 16  # 1 ms at 16 kHz, the board's part out
    assert "baud" not in r.stderr  # --baud auto leaves a remote port alone


def test_baud_auto_leaves_rfc2217_alone():
    port = SimpleNamespace(name="rfc2217://rig:4000", serial=SimpleNamespace(port="rfc2217://rig:4000"))
    assert baud.plan(port, "auto") == (None, None, None)


def test_rfc2217_urls_do_not_wait_for_modem_line_answers():
    assert rfc2217_url("rfc2217://h:1") == "rfc2217://h:1?ign_set_control"
    assert rfc2217_url("rfc2217://h:1?timeout=5") == "rfc2217://h:1?timeout=5&ign_set_control"
    assert rfc2217_url("rfc2217://h:1?ign_set_control") == "rfc2217://h:1?ign_set_control"
    assert rfc2217_url("socket://h:1") == "socket://h:1"
