"""`-p id:SERIAL`: the board named by its USB serial number, found in pyserial's port list as
the host reads it. On Linux pyserial globs /dev/ttyACM* and reads each port's USB device from
/sys/class/tty/NAME/device; here, in a private mount namespace, /dev holds two ttyACM ports
that lead to virtual boards' ptys and /sys/class/tty describes them as USB CDC devices with
serial numbers, so pyserial, and `i2s` through it, read them as they read a plugged-in Pico.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ENV

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("unshare"),
    reason="needs Linux, root and unshare(1) to give pyserial a private /dev and /sys/class/tty")


def _usb_port(root, name: str, serial: str, vid="2e8a", pid="0005") -> None:
    """/sys/class/tty/NAME as the kernel lays out a USB CDC ACM port (what pyserial reads)."""
    usb = root / "devices" / f"usb-{name}"
    iface = usb / "1-1:1.0"
    iface.mkdir(parents=True)
    (root / "bus" / "usb").mkdir(parents=True, exist_ok=True)
    (iface / "subsystem").symlink_to(root / "bus" / "usb")
    (iface / "interface").write_text("Board CDC\n")
    for attr, value in {"idVendor": vid, "idProduct": pid, "serial": serial, "bNumInterfaces": " 2",
                        "manufacturer": "MicroPython", "product": "Board in FS mode"}.items():
        (usb / attr).write_text(value + "\n")
    tty = root / "tty" / name
    tty.mkdir(parents=True)
    (tty / "device").symlink_to(iface)


def _in_namespace(tmp_path, ports: dict[str, tuple[str, str]], *args) -> subprocess.CompletedProcess:
    """Run `i2s ARGS` where /dev has only the ports {ttyACMn: (pty, serial)} (and what a
    program needs: null, urandom, pts) and /sys/class/tty describes them."""
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    for name, (_, serial) in ports.items():
        _usb_port(sysfs, name, serial)
    dev.mkdir()
    (dev / "pts").mkdir()
    (dev / "ptmx").symlink_to("pts/ptmx")
    for node in ("null", "zero", "urandom", "random"):
        (dev / node).touch()
    for name, (pty, _) in ports.items():
        (dev / name).symlink_to(pty)
    binds = " && ".join(f"mount --bind /dev/{n} {dev}/{n}" for n in ("null", "zero", "urandom", "random"))
    cmd = " ".join(f"'{a}'" for a in (sys.executable, "-m", "i2scli", *map(str, args)))
    script = (f"set -e; {binds} && mount --bind /dev/pts {dev}/pts && mount --rbind {dev} /dev"
              f" && mount --bind {sysfs}/tty /sys/class/tty && exec {cmd}")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=60, env=ENV)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def test_pyserial_reads_the_serial_numbers(tmp_path, sim):
    a = sim("rp2", capture=False, events=False)
    r = _in_namespace(tmp_path, {"ttyACM0": (a.path, "E6614C311B4F8E2A")}, "devices", "--json")
    devs = json.loads(r.stdout)
    assert [(d["path"], d["serial_number"], d["vid_pid"]) for d in devs] == [
        ("/dev/ttyACM0", "E6614C311B4F8E2A", "2e8a:0005")]


def test_id_picks_the_board_with_that_serial_among_two(tmp_path, sim):
    a, b = sim("rp2", capture=False, events=False), sim("esp32s3", capture=False, events=False)
    ports = {"ttyACM0": (a.path, "AAAA0001"), "ttyACM1": (b.path, "BBBB0002")}
    r = _in_namespace(tmp_path, ports, "info", "--json", "--no-probe", "-p", "id:BBBB0002")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["port"] == "/dev/ttyACM1" and got["platform"] == "esp32"


def test_auto_refuses_two_boards_and_names_their_serials(tmp_path, sim):
    a, b = sim("rp2", capture=False, events=False), sim("rp2", capture=False, events=False)
    ports = {"ttyACM0": (a.path, "AAAA0001"), "ttyACM1": (b.path, "BBBB0002")}
    r = _in_namespace(tmp_path, ports, "info", "--no-probe")
    assert r.returncode == 3
    assert r.stderr.strip().splitlines() == [
        "i2s: error: 2 boards attached (/dev/ttyACM0 (Raspberry Pi (RP2040/RP2350), serial AAAA0001), "
        "/dev/ttyACM1 (Raspberry Pi (RP2040/RP2350), serial BBBB0002)): "
        "choose one with -p PORT, -p id:SERIAL or I2S_PORT"]


def test_id_refuses_in_one_line_when_none_or_two_match(tmp_path, sim):
    a, b = sim("rp2", capture=False, events=False), sim("rp2", capture=False, events=False)
    ports = {"ttyACM0": (a.path, "SAME"), "ttyACM1": (b.path, "SAME")}
    r = _in_namespace(tmp_path / "two", ports, "info", "--no-probe", "-p", "id:SAME")
    assert r.returncode == 3
    assert r.stderr.strip().splitlines() == [
        "i2s: error: 2 ports have the serial number 'SAME' (/dev/ttyACM0, /dev/ttyACM1): choose one with -p PATH"]
    r = _in_namespace(tmp_path / "none", ports, "info", "--no-probe", "-p", "id:NOPE")
    assert r.returncode == 3
    assert r.stderr.strip().splitlines() == [
        "i2s: error: no port has the USB serial number 'NOPE' (attached: SAME): check `i2s devices`"]
