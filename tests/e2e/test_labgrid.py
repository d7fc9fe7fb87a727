"""`-p labgrid://PLACE` through a real labgrid coordinator and exporter (a RawSerialPort on the
virtual board's pty, served by the exporter's own ser2net), all on 127.0.0.1 and started here;
skipped, with the reason, where labgrid (the extra i2scli[labgrid]) or ser2net is missing."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ENV, I2S, stop_process

from i2scli.link.errors import NoDevice
from i2scli.ports import labgrid_place

BIN = Path(sys.executable).parent


def test_url_parsing():
    env = {"LG_PLACE": "envplace", "LG_COORDINATOR": "coord:1"}
    assert labgrid_place.parse("labgrid://rig1", env) == labgrid_place.PlaceURL("rig1", "coord:1")
    assert labgrid_place.parse("labgrid://", env) == labgrid_place.PlaceURL("envplace", "coord:1")
    assert labgrid_place.parse("labgrid://rig1?coordinator=h:2", env) == labgrid_place.PlaceURL("rig1", "h:2")
    assert labgrid_place.parse("labgrid://rig1", {}).coordinator == "127.0.0.1:20408"
    with pytest.raises(NoDevice, match="LG_PLACE"):
        labgrid_place.parse("labgrid://", {})
    with pytest.raises(NoDevice, match="unknown option"):
        labgrid_place.parse("labgrid://rig1?speed=9", {})


@pytest.mark.slow
def test_pyserial_survives_the_extra():
    """labgrid pulls in pyserial-labgrid, which installs its own `serial` over pyserial's: what
    is imported must still be a whole pyserial (every file both distributions list is there)."""
    pytest.importorskip("labgrid")
    code = (
        "import serial, serial.rfc2217, serial.tools.list_ports, serial.tools.miniterm\n"
        "assert serial.__version__.startswith('3.5'), serial.__version__\n"
        "s = serial.serial_for_url('loop://', timeout=0.1); s.write(b'ok'); assert s.read(2) == b'ok'\n"
        "from importlib.metadata import files, PackageNotFoundError\n"
        "import pathlib\n"
        "for dist in ('pyserial', 'pyserial-labgrid'):\n"
        "    try: fs = files(dist) or []\n"
        "    except PackageNotFoundError: continue\n"
        "    for f in fs:\n"
        "        if str(f).startswith('serial/') and str(f).endswith('.py'):\n"
        "            assert pathlib.Path(f.locate()).exists(), f\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def lab(tmp_path, sim):
    pytest.importorskip("labgrid.remote.client", reason="labgrid is not installed (pip install 'i2scli[labgrid]')")
    if shutil.which("ser2net") is None and shutil.which("ser2net", path="/usr/sbin:/sbin") is None:
        pytest.skip("ser2net is not installed (Debian: apt-get install ser2net)")
    board = sim("fast", "--loopback", "0>1,delay=1ms", capture=False, events=False)
    board2 = sim("fast", "--loopback", "0>1,delay=1ms", capture=False, events=False)
    coord = f"127.0.0.1:{_free_port()}"
    env = {**ENV, "LG_COORDINATOR": coord, "PATH": f"{ENV.get('PATH', '')}:/usr/sbin:/sbin"}
    env.pop("LG_PLACE", None)
    procs = []
    (tmp_path / "coord").mkdir()
    logs = open(tmp_path / "lab.log", "w")

    def start(*cmd, cwd=tmp_path):
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=logs, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append(p)
        return p

    def client(*args, user=None, check=True):
        e = {**env, **({"LG_USERNAME": user} if user else {})}
        r = subprocess.run([str(BIN / "labgrid-client"), "-x", coord, *args], capture_output=True, text=True,
                           env=e, timeout=30)
        if check:
            assert r.returncode == 0, r.stdout + r.stderr
        return r

    def holder(place="rig1"):
        out = client("-p", place, "show").stdout
        line = next(x for x in out.splitlines() if x.strip().startswith("acquired:"))
        return line.split(":", 1)[1].strip()

    try:
        start(str(BIN / "labgrid-coordinator"), "-l", coord, cwd=tmp_path / "coord")
        _wait(lambda: client("places", check=False).returncode == 0, 30, "the coordinator")
        (tmp_path / "exporter.yaml").write_text(
            f"rig:\n  RawSerialPort:\n    port: {board.path}\n    speed: 115200\n"
            f"rig2:\n  RawSerialPort:\n    port: {board2.path}\n    speed: 115200\n")
        start(str(BIN / "labgrid-exporter"), "-c", coord, "-n", "exp1", "--hostname", "127.0.0.1",
              str(tmp_path / "exporter.yaml"))
        _wait(lambda: "exp1/rig2/NetworkSerialPort" in client("resources", check=False).stdout, 30, "the exporter")
        for place, group in (("rig1", "rig"), ("rig2", "rig2")):
            client("-p", place, "create")
            client("-p", place, "add-match", f"exp1/{group}/NetworkSerialPort")
        yield type("Lab", (), {"coord": coord, "env": env, "client": staticmethod(client),
                               "holder": staticmethod(holder), "url": f"labgrid://rig1?coordinator={coord}"})
    finally:
        for p in reversed(procs):
            stop_process(p, 15)
        logs.close()


def _run(lab, *args, timeout=90):
    r = subprocess.run([*I2S, *args], capture_output=True, text=True, timeout=timeout, env=lab.env)
    assert "Traceback" not in r.stderr, r.stderr
    return r


@pytest.mark.slow
def test_play_record_test_through_labgrid(lab, tmp_path):
    r = _run(lab, "play", "-p", lab.url, "--tone", "440", "-d", "0.5s", "-r", "16000", "-b", "16", "-c", "1")
    assert r.returncode == 0, r.stderr
    assert lab.holder() == "None"  # released what it acquired
    r = _run(lab, "record", "-p", lab.url, "-d", "0.5s", "-r", "16000", "-b", "16", "-c", "1", str(tmp_path / "o.wav"))
    assert r.returncode == 0, r.stderr
    assert lab.holder() == "None"
    # held by this user already (a CI step acquired it): used, and left acquired
    lab.client("-p", "rig1", "acquire")
    r = _run(lab, "test", "-p", lab.url, "-r", "16000", "-b", "16", "-c", "1", "--max-latency", "2ms", "--json")
    assert r.returncode == 0, r.stderr
    assert lab.holder() != "None"
    lab.client("-p", "rig1", "release")


@pytest.mark.slow
def test_the_port_moves_and_the_next_command_follows(lab):
    """The exporter serves a place's port on a new TCP port each time it is acquired (and again
    when a reset board comes back): every command asks the coordinator anew."""
    def served():  # where the coordinator says the place's port is now
        place = labgrid_place.Place(labgrid_place.parse(lab.url))
        try:
            return place.serial_url()
        finally:
            place.close()

    lab.client("-p", "rig1", "acquire")  # a CI job holds the place across its steps
    try:
        before = served()
        r = _run(lab, "info", "-p", lab.url, "--json")
        assert r.returncode == 0, r.stderr
        lab.client("-p", "rig1", "release")
        lab.client("-p", "rig1", "acquire")
        after = served()
        assert before != after and after.startswith("rfc2217://127.0.0.1:")
        r = _run(lab, "info", "-p", lab.url, "--json")  # the old port is gone: only a fresh resolve works
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["i2s"] is True
        assert lab.holder() != "None"  # ours before, ours after
    finally:
        lab.client("-p", "rig1", "release")


@pytest.mark.slow
def test_lg_proxy_goes_through_labgrids_ssh_forward(lab, monkeypatch):
    """With LG_PROXY the address comes from labgrid's own proxymanager, which asks its SSH
    manager for a forward to the exporter's port (stubbed here: there is no SSH server)."""
    from labgrid.util.proxy import proxymanager
    from labgrid.util.ssh import sshmanager

    asked = []

    def forward(proxy, host, port):
        asked.append((proxy, host, port))
        return 40123

    lab.client("-p", "rig1", "acquire")
    try:
        place = labgrid_place.Place(labgrid_place.parse(lab.url))
        try:
            direct = place.serial_url()
            monkeypatch.setenv("LG_PROXY", "gateway")
            monkeypatch.setattr(type(proxymanager), "_force_proxy", "gateway")  # read at import, from LG_PROXY
            monkeypatch.setattr(sshmanager, "request_forward", forward)
            assert place.serial_url() == "rfc2217://localhost:40123"
        finally:
            place.close()
    finally:
        lab.client("-p", "rig1", "release")
    host, port = direct.removeprefix("rfc2217://").rsplit(":", 1)
    assert asked == [("gateway", host, int(port))]


@pytest.mark.slow
def test_two_places_in_parallel_one_junit_file(lab, tmp_path):
    report = tmp_path / "report.xml"
    r = _run(lab, "test", "-p", lab.url, "-p", lab.url.replace("rig1", "rig2"), "-r", "16000", "-b", "16", "-c", "1",
             "--junit", str(report), timeout=180)
    assert r.returncode == 0, r.stderr
    import xml.etree.ElementTree as ET

    suites = ET.parse(report).getroot().findall("testsuite")
    assert len(suites) == 2, report.read_text()
    assert lab.holder("rig1") == "None" and lab.holder("rig2") == "None"


@pytest.mark.slow
def test_a_place_held_by_someone_else_is_refused(lab):
    lab.client("-p", "rig1", "acquire", user="alice")
    r = _run(lab, "info", "-p", lab.url)
    assert r.returncode == 3, r.stderr
    assert "alice" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "alice" in lab.holder()  # not released by the refused client
    lab.client("-p", "rig1", "release", user="alice")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_releases_the_place(lab, tmp_path, sig):
    p = subprocess.Popen([*I2S, "record", "-p", lab.url, "-d", "60s", "-r", "16000", "-b", "16", "-c", "1",
                          str(tmp_path / "o.wav")], env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        _wait(lambda: (tmp_path / "o.wav").exists() or p.poll() is not None, 60, "the recording to start")
        assert p.poll() is None, p.communicate()
        assert lab.holder() != "None"
        p.send_signal(sig)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert "Traceback" not in err, err
    assert lab.holder() == "None"


@pytest.mark.slow
def test_labgrid_pytest_plugin_drives_i2s(lab, tmp_path):
    """labgrid's own pytest plugin, an env YAML importing i2scli.labgrid, the I2SDriver's calls."""
    (tmp_path / "env.yaml").write_text(
        "targets:\n  main:\n    resources:\n      RemotePlace: {name: rig1}\n"
        "    drivers:\n      I2SDriver: {}\nimports: [i2scli.labgrid]\n")
    (tmp_path / "test_rig.py").write_text(
        "def test_rig(target):\n"
        "    i2s = target.get_driver('I2SDriver')\n"
        "    target.activate(i2s)\n"
        "    assert i2s.info()['board']\n"
        "    res = i2s.test(rate=16000, bits=16, channels=1)\n"
        "    assert res['passed'], res\n"
        "    with i2s.open() as board:\n"
        "        assert board.rec(1600, 16000, channels=1, bits=16).shape == (1600, 1)\n")
    lab.client("-p", "rig1", "acquire")
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--lg-env",
                            str(tmp_path / "env.yaml"), str(tmp_path / "test_rig.py")],
                           cwd=tmp_path, capture_output=True, text=True, env=lab.env, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        lab.client("-p", "rig1", "release")


@pytest.mark.slow
def test_python_api_on_a_plain_port_url(sim):
    from i2scli.api import Board, I2SError

    board = sim("fast", "--loopback", "0>1,delay=1ms", capture=False, events=False)
    b = Board(board.path, timeout=120)
    assert b.info()["board"]
    assert b.test(rate=16000, bits=16, channels=1)["passed"]
    with pytest.raises(I2SError) as e:
        Board("/dev/nonexistent-i2s").info()
    assert e.value.exit_code == 3


@pytest.mark.slow
def test_no_coordinator_is_one_line_exit_3():
    pytest.importorskip("labgrid.remote.client", reason="labgrid is not installed (pip install 'i2scli[labgrid]')")
    r = subprocess.run([*I2S, "info", "-p", f"labgrid://rig1?coordinator=127.0.0.1:{_free_port()}"],
                       capture_output=True, text=True, timeout=60, env=ENV)
    assert r.returncode == 3, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "coordinator" in r.stderr, r.stderr
