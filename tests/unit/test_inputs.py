"""What a user can hand `i2s` that is not a normal file or number: closed stdin/stdout, special
files and FIFOs that never end, non-finite and out-of-range numbers. Each is one line naming
the option or the file, with a documented exit code (README), no traceback, no Python warning,
and nothing played."""

from __future__ import annotations

import io
import os
import resource
import signal
import struct
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ENV, I2S, i2s

from i2scli import audio
from i2scli.audio import spool
from i2scli.errors import AudioError

NO_PORT = "/dev/i2s-no-such-port"  # a number accepted by mistake would end at exit 3, not 2


def run(args, *, close=(), fsize=None, stdin=None, timeout=60) -> subprocess.CompletedProcess:
    """The real command line, with file descriptors `close`d and an optional file-size limit
    (so that a regression that copies an endless input cannot fill the disk)."""
    def child():
        for fd in close:
            os.close(fd)
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    r = subprocess.run([*I2S, *map(str, args)], stdin=stdin, stdout=None if 1 in close else subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, env=ENV, timeout=timeout, preexec_fn=child)
    assert "Traceback" not in r.stderr and "Warning" not in r.stderr, r.stderr
    return r


def one_line(r, code: int, *words) -> str:
    got = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == code, (r.returncode, r.stderr)
    assert len(got) == 1 and got[0].startswith("i2s: error:"), r.stderr
    assert all(w in got[0] for w in words), got
    return got[0]


# -- closed standard streams --------------------------------------------------------------------


@pytest.mark.slow
def test_play_with_stdin_closed():
    one_line(run(["play", "-q", "-p", NO_PORT, "-"], close=[0]), 1, "standard input is closed")


def test_record_with_stdout_closed():
    """Said before any board is looked for (the port does not exist: that would be exit 3)."""
    one_line(run(["record", "-q", "-d", "1s", "-p", NO_PORT, "-"], close=[1]), 1, "standard output is closed")


# -- special files and endless inputs ---------------------------------------------------------


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom"])
def test_an_endless_device_is_refused_naming_it(path):
    """Not copied to TMPDIR until the disk is full: refused once its first bytes are not audio.
    (The child may write no file bigger than 64 MiB, so a regression fails rather than fills.)"""
    one_line(run(["play", "-q", "-p", NO_PORT, path], fsize=64 << 20), 1, path, "not a readable audio file")


def test_endless_stdin_that_is_not_audio():
    with open("/dev/zero", "rb") as zero:
        r = run(["play", "-q", "-p", NO_PORT, "-"], stdin=zero, fsize=64 << 20)
    one_line(r, 1, "standard input", "not a readable audio file")


@pytest.mark.slow
def test_spool_that_cannot_be_written_names_the_input_and_tmpdir(tmp_path):
    """A copy the OS refuses (a file-size limit: EFBIG, as a full TMPDIR's ENOSPC) names the
    input and where the copy was going (FLAC from a pipe is copied: libsndfile seeks in it)."""
    fifo = tmp_path / "song.fifo"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=_feed_flac_forever, args=(fifo,), daemon=True)
    feeder.start()
    r = run(["play", "-q", "-p", NO_PORT, fifo], fsize=1 << 20)
    one_line(r, 1, str(fifo), "cannot keep a copy in")


def _endless_wav_header(rate=8000) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + \
        struct.pack("<I", 0xFFFFFFFF)


def _feed_wav_forever(path: Path) -> None:
    """A valid WAV that never ends (as `sox -n -t wav - synth` writes), until the reader goes."""
    try:
        with open(path, "wb") as f:
            f.write(_endless_wav_header())
            block = b"\x01\x00" * 65536
            while True:
                f.write(block)
    except OSError:  # the reader closed it
        pass


def _feed_flac_forever(path: Path) -> None:
    """A stream that starts as FLAC does and never ends, until the reader goes."""
    try:
        with open(path, "wb") as f:
            f.write(b"fLaC")
            block = bytes(range(256)) * 256
            while True:
                f.write(block)
    except OSError:  # the reader closed it
        pass


def test_an_endless_stream_that_must_be_copied_is_bounded(tmp_path, monkeypatch):
    """A format libsndfile cannot read from a pipe (FLAC) is copied up to SPOOL_MAX, then
    refused naming the FIFO."""
    monkeypatch.setattr(spool, "SPOOL_MAX", 4 << 20)
    fifo = tmp_path / "live.fifo"
    os.mkfifo(fifo)
    threading.Thread(target=_feed_flac_forever, args=(fifo,), daemon=True).start()
    with pytest.raises(AudioError) as e:
        audio.open_input(str(fifo))
    assert str(e.value).startswith(f"{fifo}: more than 4 MiB and not ended")


def test_an_endless_wav_plays_as_it_comes(tmp_path):
    """A WAV that never ends (sizes 0xFFFFFFFF, as sox writes to a pipe) is not copied: it opens
    at once, its length unknown, and its blocks come as they are written."""
    fifo = tmp_path / "live.fifo"
    os.mkfifo(fifo)
    threading.Thread(target=_feed_wav_forever, args=(fifo,), daemon=True).start()
    with audio.open_input(str(fifo)) as inp:
        assert inp.streaming and inp.frames is None and (inp.rate, inp.channels) == (8000, 1)
        blocks = audio.play_blocks(inp, audio.BusFormat(8000, 16, 1), max_frames=100_000)
        got = b"".join(blocks)
    assert got == b"\x01\x00" * 100_000


@pytest.mark.slow
def test_a_long_stdin_past_the_sniff_still_plays():
    """Real audio longer than the first bytes checked opens whole, every frame there."""
    frames = (audio.SPOOL_SNIFF // 4) + 12345
    x = (np.arange(frames * 2, dtype=np.int64) % 65536 - 32768).astype(np.int16).reshape(-1, 2)
    buf = io.BytesIO()
    sf.write(buf, x, 48000, format="WAV", subtype="PCM_16")
    with audio.open_input("-", stdin=io.BytesIO(buf.getvalue())) as inp:
        assert inp.frames == frames
        got = np.concatenate(list(inp._blocks(0, frames, 1 << 20, "int16")))
    assert np.array_equal(got, x)


# -- numbers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("in") / "a.wav"
    sf.write(str(p), np.zeros((800, 1)), 8000, subtype="PCM_16")
    return p


NUMBERS = [
    (["play", "--tone", "inf"], "--tone", "not a finite number"),
    (["play", "--tone", "nan"], "--tone", "not a finite number"),
    (["play", "--tone", "-inf"], "--tone", "not a finite number"),
    (["play", "--tone", "1e300"], "--tone", "Nyquist"),
    (["play", "--tone", "30000", "-r", "48000"], "--tone", "Nyquist"),
    (["play", "--tone", "440", "--level", "nan"], "--level", "not a finite number"),
    (["play", "--tone", "440", "--level", "inf"], "--level", "not a finite number"),
    (["play", "--tone", "440", "--level", "-inf"], "--level", "not a finite number"),
    (["play", "--tone", "440", "--level", "-1e308"], "--level", "range"),
    (["play", "--tone", "440", "--level", "3"], "--level", "range"),
    (["play", "WAV", "--gain", "nan"], "--gain", "not a finite number"),
    (["play", "WAV", "--gain", "inf"], "--gain", "not a finite number"),
    (["play", "WAV", "--gain", "1e308"], "--gain", "range"),
    (["play", "--tone", "440", "-r", "4000000000"], "--rate", "range"),
    (["record", "-r", "4000000000", "OUT"], "--rate", "range"),
    (["record", "--stop-on-silence", "1s", "--threshold", "nan", "OUT"], "--threshold", "not a finite number"),
    (["record", "--stop-on-silence", "1s", "--threshold", "1e308", "OUT"], "--threshold", "range"),
    (["duplex", "-d", "1s", "-r", "4000000000", "-o", "OUT"], "--rate", "range"),
    (["duplex", "-d", "1s", "--threshold", "nan", "-o", "OUT"], "--threshold", "not a finite number"),
    (["doctor", "-r", "4000000000"], "--rate", "range"),
    (["test", "-r", "4000000000"], "--rate", "range"),
    (["test", "--freq", "inf"], "--freq", "not a finite number"),
    (["test", "--level", "nan"], "--level", "not a finite number"),
    (["test", "--min-snr", "nan"], "--min-snr", "not a finite number"),
    (["test", "--max-thd-n", "-inf"], "--max-thd-n", "not a finite number"),
    (["test", "--min-level", "nan"], "--min-level", "not a finite number"),
    (["test", "--max-level", "inf"], "--max-level", "not a finite number"),
    (["test", "--min-window-snr", "nan"], "--min-window-snr", "not a finite number"),
    (["test", "--freq-tolerance", "nan"], "--freq-tolerance", "not a finite number"),
    # a number of 400 digits is a float infinity; a ring larger than any board's RAM
    (["play", "--tone", "440", "-d", "9" * 400], "--duration", "longer than"),
    (["record", "-d", "9" * 400 + "s", "OUT"], "--duration", "longer than"),
    (["duplex", "-d", "1s", "--switch-delay", "9" * 400, "-o", "OUT"], "--switch-delay", "longer than"),
    (["record", "--ibuf", "9" * 400, "OUT"], "--ibuf", "range"),
    (["test", "--ibuf", "9" * 400], "--ibuf", "range"),
]


@pytest.mark.slow
@pytest.mark.parametrize("args,option,words", NUMBERS, ids=[" ".join(a)[:60] for a, _, _ in NUMBERS])
def test_bad_numbers_are_usage_errors_naming_the_option(args, option, words, wav, tmp_path):
    args = [str(wav) if a == "WAV" else str(tmp_path / "out.wav") if a == "OUT" else a for a in args]
    r = i2s(*args, "-q", "-p", NO_PORT, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr)
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert len(err) == 1 and option in err[0] and words in err[0], r.stderr
    assert "Warning" not in r.stderr
    assert not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom"])
def test_limits_from_an_endless_device(path):
    one_line(run(["test", "-q", "-p", NO_PORT, "--limits", path]), 2, path, "not a limits file")
