"""Nothing the user had is lost: a recording is made beside its file and takes its place only
once audio arrives (or at its end). Every refusal, usage error and board error before that
leaves an existing file, a symlink and its target exactly as they were; a recording that ran is
a valid file in place with every sample received, through a symlink in the file it points to."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ENV, I2S, i2s

TOO_FAST = ["-p", "sim://esp32", "--baud", "off", "-r", "48000", "-b", "32", "-c", "2"]  # exit 4: the link


@pytest.fixture
def work(tmp_path) -> Path:
    """A folder of the user's files (tmp_path also holds the test's probe cache)."""
    (tmp_path / "w").mkdir()
    return tmp_path / "w"


def keepsake(folder: Path) -> tuple[Path, Path, Path]:
    """keep.wav (a file), link.wav -> real/t.wav (a symlink and its target), each a real WAV."""
    x = (np.arange(4000) % 200 - 100).astype(np.int16)
    keep = folder / "keep.wav"
    sf.write(str(keep), x, 8000, subtype="PCM_16")
    (folder / "real").mkdir()
    target = folder / "real" / "t.wav"
    sf.write(str(target), x[::-1].copy(), 8000, subtype="PCM_16")
    os.chmod(target, 0o640)
    link = folder / "link.wav"
    link.symlink_to(Path("real") / "t.wav")
    return keep, link, target


def snapshot(folder: Path) -> dict:
    """Every entry under `folder`: its kind, bytes (or link text) and mode."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        what = os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
        out[str(p.relative_to(folder))] = (what, st.st_mode)
    return out


REFUSALS = {
    # the link cannot carry it: refused after the board answered (exit 4)
    "too fast": (lambda out: ["record", "-q", *TOO_FAST, "-d", "0.5s", out], 4),
    "too fast, duplex": (lambda out: ["duplex", "-q", *TOO_FAST, "-d", "0.5s", "-o", out], 4),
    # a preset that does not exist: a usage error, found once the board is open (exit 2)
    "--board nope": (lambda out: ["record", "-q", "-p", "sim://rp2", "--board", "nope", "-d", "0.5s", out], 2),
    "--board nope, duplex": (lambda out: ["duplex", "-q", "-p", "sim://rp2", "--board", "nope", "-d", "0.5s",
                                          "-o", out], 2),
    # a board no preset fits, pins not given
    "no preset": (lambda out: ["record", "-q", "-p", "sim://custom", "-d", "0.5s", out], 2),
    # the board's own refusal: a rate its port rejects
    "rate the port rejects": (lambda out: ["record", "-q", "-p", "sim://mimxrt", "-r", "44000", "-d", "0.5s",
                                           out], 4),
    # no machine.I2S
    "no I2S": (lambda out: ["record", "-q", "-p", "sim://no-i2s", "-d", "0.5s", out], 4),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refusal_leaves_the_file_the_link_and_its_target_as_they_were(work, case):
    keep, link, _ = keepsake(work)
    before = snapshot(work)
    args, code = REFUSALS[case]
    for out in (keep, link):
        r = i2s(*args(out), timeout=90)
        assert r.returncode == code, (r.returncode, r.stderr)
        assert snapshot(work) == before, f"{out.name} changed (or a temporary file was left)"


@pytest.mark.slow
def test_duplex_cycles_refused_leave_every_take(work):
    takes = [work / f"take-{n}.wav" for n in (1, 2)]
    for n, t in enumerate(takes):
        sf.write(str(t), np.full(100, n + 1, np.int16), 8000, subtype="PCM_16")
    before = snapshot(work)
    i2s("duplex", "-q", *TOO_FAST, "-d", "0.5s", "--cycles", "2", "-o", work / "take-{n}.wav", check=4,
        timeout=90)
    assert snapshot(work) == before


@pytest.mark.slow
def test_a_recording_through_a_symlink_replaces_the_target_and_keeps_the_link(work):
    keep, link, target = keepsake(work)
    i2s("record", "-q", "-p", "sim://fast?rx_source=ramp", "-r", "16000", "-b", "16", "-c", "1", "-s", "1234",
        link, check=0)
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "t.wav")
    assert sf.info(str(target)).frames == 1234
    assert target.stat().st_mode & 0o777 == 0o640  # the permissions the file had
    assert sorted(p.name for p in (work / "real").iterdir()) == ["t.wav"]
    i2s("record", "-q", "-p", "sim://fast?rx_source=ramp", "-r", "16000", "-b", "16", "-c", "1", "-s", "99",
        keep, check=0)
    assert sf.info(str(keep)).frames == 99
    assert sorted(p.name for p in work.iterdir()) == ["keep.wav", "link.wav", "real"]


@pytest.mark.slow
def test_a_new_file_gets_the_permissions_of_a_new_file(work):
    out = work / "new.wav"
    old = os.umask(0o027)
    try:
        i2s("record", "-q", "-p", "sim://fast", "-s", "100", out, check=0)
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o640


@pytest.mark.slow
def test_a_lost_board_keeps_every_sample_in_the_file_a_link_points_to(work):
    """The recording started, then the board went: it is in place (the target replaced, the
    link kept), a valid file holding what arrived."""
    _, link, target = keepsake(work)
    r = i2s("record", "-q", "-p", "sim://fast?rx_source=ramp&fault=unplug:at=1.5s", "-r", "16000", "-b", "16",
            "-c", "2", "-d", "10s", link, timeout=40, check=5)
    assert link.is_symlink()
    info = sf.info(str(target))
    assert info.channels == 2 and 0 < info.frames < 160000
    assert f"kept {info.frames} frames" in r.stderr
    assert target.stat().st_size == 44 + info.frames * 4


@pytest.mark.slow
def test_a_signal_before_any_audio_leaves_the_file(work):
    """Stopped (SIGTERM) while waiting for a sound that never comes: nothing was recorded, and
    keep.wav is as it was (exit 130)."""
    keep, _, _ = keepsake(work)
    before = snapshot(work)
    p = subprocess.Popen([*I2S, "record", "-p", "sim://fast", "--wait-for-sound", "-d", "5s", str(keep)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    seen = ""
    while "recording " not in seen:  # the stream is running: said just before it starts
        line = p.stderr.readline()
        assert line, (p.wait(), seen)
        seen += line
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130, seen + err
    assert "Traceback" not in err
    assert snapshot(work) == before


@pytest.mark.slow
def test_save_recording_that_cannot_be_written_leaves_the_old_one(small_disk):
    """`i2s test --save-recording` on a disk too small for it: exit 1 naming the file, and the
    recording saved by an earlier run is whole."""
    old = small_disk / "rec.wav"
    sf.write(str(old), (np.arange(8000) % 100).astype(np.int16), 8000, subtype="PCM_16")
    before = old.read_bytes()
    r = i2s("test", "-q", "-p", "sim://fast?loopback=0%3E1", "-r", "48000", "-b", "32", "-c", "2",
            "--save-recording", old, timeout=120)
    assert r.returncode in (1, 7), r.stderr  # 7: a check failed too (a loaded machine), which comes first
    assert f"cannot write {old}" in r.stderr
    assert old.read_bytes() == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["rec.wav"]


@pytest.mark.slow
def test_save_recording_through_a_symlink(work):
    _, link, target = keepsake(work)
    i2s("test", "-q", "-p", "sim://fast?loopback=0%3E1", "-r", "16000", "-b", "16", "-c", "1",
        "--save-recording", link, timeout=120)
    assert link.is_symlink()
    assert sf.info(str(target)).samplerate == 16000
    assert sorted(p.name for p in (work / "real").iterdir()) == ["t.wav"]


def test_output_takes_the_place_of_the_file_at_its_first_audio(work):
    """The library's own terms: until audio is written the old file is whole; from then on the
    recording is at the path (a kill leaves it there, header current); abandon before any
    audio removes only the temporary file."""
    from i2scli import audio

    keep, link, target = keepsake(work)
    before = snapshot(work)
    bus = audio.BusFormat(8000, 16, 1)
    out = audio.open_output(str(link), bus)
    assert snapshot(work).keys() - before.keys()  # the temporary file, beside the target
    out.abandon()
    assert snapshot(work) == before
    out = audio.open_output(str(keep), bus)
    out.write(b"")  # no whole frame yet: nothing changes
    out.write(b"\x01")
    assert keep.read_bytes() == before["keep.wav"][0]
    out.write(b"\x00\x02\x00")  # two frames: the recording is in place now, its header covering them
    assert sf.read(str(keep), dtype="int16")[0].tolist() == [1, 2]
    out.write(np.array([[3]], np.int16))
    out.close()
    assert sf.read(str(keep), dtype="int16")[0].tolist() == [1, 2, 3]
    assert sorted(p.name for p in work.iterdir()) == ["keep.wav", "link.wav", "real"]


@pytest.mark.slow
def test_a_symlink_loop_is_refused_before_the_board(work):
    loop = work / "loop.wav"
    loop.symlink_to("loop.wav")
    r = i2s("record", "-q", "-s", "10", "-p", "/dev/i2s-no-such-port", loop, check=1)
    assert "loop.wav: Too many levels of symbolic links" in r.stderr
    assert [p.name for p in work.iterdir()] == ["loop.wav"]
