"""What the commands print on stderr: messages, progress (plain and live) and the end summary."""

from __future__ import annotations

import io
import math
import re
import sys
import time

import numpy as np
import pytest
from rich.console import Console

from i2scli.audio import BusFormat, Levels
from i2scli.cli.ui import Reporter, format_dbfs, format_rate, format_summary, format_time

BUS = BusFormat(48000, 32, 2)
ANSI = re.compile(r"\x1b")
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def plain_console(width: int = 80) -> Console:
    return Console(file=io.StringIO(), force_terminal=False, width=width)


def tty_console(width: int = 100) -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=width, color_system="truecolor")


def output(console: Console) -> str:
    return console.file.getvalue()


def levels_at(dbfs: list[float], bus: BusFormat = BUS, now: float = 0.0, levels: Levels | None = None) -> Levels:
    """Levels fed one block whose channels peak at `dbfs`."""
    levels = levels or Levels(bus)
    block = np.zeros((480, bus.channels), np.int64)
    for c, db in enumerate(dbfs):
        block[:, c] = min(bus.full_scale - 1, round(bus.full_scale * 10 ** (db / 20)))
    levels.feed(block.astype(bus.dtype), now=now)
    return levels


def color_params(text: str) -> list[int]:
    """SGR parameters that set a colour (foreground or background)."""
    found = []
    for m in SGR.finditer(text):
        for p in filter(None, m.group(1).split(";")):
            n = int(p)
            if 30 <= n <= 49 or 90 <= n <= 107:
                found.append(n)
    return found


# --------------------------------------------------------------------------------------------
# Formatting


def test_format_dbfs():
    assert format_dbfs(-3.14) == "-3.1"
    assert format_dbfs(-12.25) in ("-12.2", "-12.3")
    assert format_dbfs(0.0) == "0.0"
    assert format_dbfs(-0.01) == "0.0"
    assert format_dbfs(None) == "-inf"
    assert format_dbfs(-math.inf) == "-inf"
    assert format_dbfs(math.nan) == "-inf"


def test_format_time_and_rate():
    assert format_time(0) == "00:00.0"
    assert format_time(12.06) == "00:12.0"
    assert format_time(59.99) == "00:59.9"
    assert format_time(754.3) == "12:34.3"
    assert format_time(3723.9) == "1:02:03"
    assert format_rate(392_400) == "392 kB/s"


def test_format_summary_played():
    summary = {
        "action": "played", "file": "song.wav", "frames": 480000, "seconds": 10.0, "rate": 48000, "bits": 32,
        "channels": 2, "underruns": 0, "overruns": 0, "crc_errors": 0, "peak_dbfs": [-3.14, -3.0], "clipped": 0,
        "link_rate": 412_345,
    }
    assert format_summary(summary) == (
        "played song.wav: 10.00 s (480000 frames) at 48000 Hz 32-bit stereo; 0 underruns, 0 overruns; "
        "peak -3.1/-3.0 dBFS, 0 clipped; link 412 kB/s")


def test_format_summary_recorded_silence_and_errors():
    summary = {
        "action": "recorded", "file": "out.flac", "frames": 24000, "rate": 48000, "bits": 16, "channels": 1,
        "underruns": 1, "overruns": 2, "crc_errors": 3, "peak_dbfs": [None], "clipped": 5,
    }
    assert format_summary(summary) == (
        "recorded out.flac: 0.50 s (24000 frames) at 48000 Hz 16-bit mono; 1 underrun, 2 overruns, "
        "3 CRC errors; peak -inf dBFS, 5 clipped")


def test_format_summary_prints_only_what_is_present():
    assert format_summary({"action": "played", "file": "a.wav", "seconds": 1.5}) == "played a.wav: 1.50 s"
    assert format_summary({"action": "stopped"}) == "stopped"
    assert format_summary({"frames": 100, "peak_dbfs": -6.02, "link_rate": None}) == "100 frames; peak -6.0 dBFS"
    assert format_summary({"action": "played", "file": "x.wav", "peak_dbfs": [-1.0, None], "clipped": None}) == (
        "played x.wav: peak -1.0/-inf dBFS")
    assert format_summary({}) == ""


# --------------------------------------------------------------------------------------------
# Messages


def test_info_warn_error_plain():
    con = plain_console()
    rep = Reporter(console=con)
    rep.info("settings: 48000 Hz 32-bit stereo, I2S(2) sck=P2 ws=P3 sd=P0, ibuf 16384, blocking io")
    rep.warn("the board [stm32] is slow")
    rep.error("cannot open port\n  /dev/ttyACM0: busy")
    assert output(con).splitlines() == [
        "settings: 48000 Hz 32-bit stereo, I2S(2) sck=P2 ws=P3 sd=P0, ibuf 16384, blocking io",
        "i2s: warning: the board [stm32] is slow",
        "i2s: error: cannot open port /dev/ttyACM0: busy",
    ]
    assert not ANSI.search(output(con))


def test_long_lines_are_not_wrapped():
    con = plain_console(width=40)
    Reporter(console=con).error("x" * 150)
    assert output(con) == "i2s: error: " + "x" * 150 + "\n"


def test_quiet_keeps_only_warnings_and_errors():
    con = plain_console()
    rep = Reporter(quiet=True, console=con, interval=1.0)
    rep.info("settings")
    rep.summary({"action": "played", "file": "a.wav"})
    with rep.progress(title="playing a.wav", bus=BUS, total_frames=48000 * 10) as p:
        for i in range(100):
            p.update(frames=i * 4800, levels=levels_at([-6, -6], now=i * 0.1), now=i * 0.1)
    assert output(con) == ""
    rep.warn("w")
    rep.error("e")
    assert output(con) == "i2s: warning: w\ni2s: error: e\n"


def test_default_console_is_stderr(capsys):
    rep = Reporter()
    assert not rep.interactive  # pytest captures stderr: not a terminal
    rep.info("hello")
    rep.summary({"action": "played", "file": "a.wav", "seconds": 1.0})
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "hello\nplayed a.wav: 1.00 s\n"


# --------------------------------------------------------------------------------------------
# Plain progress


def test_plain_status_lines_at_the_interval():
    con = plain_console()
    rep = Reporter(console=con, interval=2.0)
    bus = BUS
    lv = Levels(bus)
    with rep.progress(title="playing song.wav", bus=bus, total_frames=30 * 48000) as p:
        for i in range(51):  # 0.0 .. 5.0 s in 0.1 s steps, audio 12 s ahead of the clock
            now = i * 0.1
            levels_at([-12.3, -11.9], now=now, levels=lv)
            p.update(frames=round((12 + now) * 48000), levels=lv, link_rate=392_000, now=now)
    lines = output(con).splitlines()
    assert lines == [
        "i2s: 00:14.0 / 00:30.0  L -12.3 dBFS  R -11.9 dBFS  link 392 kB/s",
        "i2s: 00:16.0 / 00:30.0  L -12.3 dBFS  R -11.9 dBFS  link 392 kB/s",
    ]
    assert not ANSI.search(output(con))


def test_plain_status_line_unknown_total_buffer_and_clip():
    con = plain_console()
    rep = Reporter(console=con, interval=1.0)
    bus = BusFormat(44100, 16, 1)
    lv = Levels(bus)
    with rep.progress(title="recording", bus=bus, total_frames=None) as p:
        p.update(frames=0, now=10.0)
        levels_at([0.0], bus, now=10.5, levels=lv)  # full scale: clipped
        p.update(frames=44100, levels=lv, buffer_fill=0.25, now=11.0)
        levels_at([-20.0], bus, now=15.0, levels=lv)
        p.update(frames=5 * 44100, levels=lv, buffer_fill=0.5, now=15.0)  # hold and CLIP expired
    assert output(con).splitlines() == [
        "i2s: 00:01.0  M 0.0 dBFS CLIP  buffer 25%",
        "i2s: 00:05.0  M -20.0 dBFS  buffer 50%",
    ]


def test_channel_names_and_held_peak():
    con = plain_console()
    rep = Reporter(console=con, interval=1.0)
    lv = Levels(BUS)
    p = rep.progress(title="t", bus=BUS, total_frames=None, channels_names=["mic", "ref"])
    levels_at([-3.0, -40.0], now=0.0, levels=lv)
    p.update(frames=0, levels=lv, now=0.0)
    levels_at([-30.0, -40.0], now=1.0, levels=lv)
    p.update(frames=48000, levels=lv, now=1.0)  # the -3 dBFS peak is still held
    levels_at([-30.0, -40.0], now=3.5, levels=lv)
    p.update(frames=48000 * 3, levels=lv, now=3.5)  # released after 3 s
    p.close()
    p.update(frames=48000 * 9, levels=lv, now=9.0)  # after close: nothing
    p.close()
    assert output(con).splitlines() == [
        "i2s: 00:01.0  mic -3.0 dBFS  ref -40.0 dBFS",
        "i2s: 00:03.0  mic -30.0 dBFS  ref -40.0 dBFS",
    ]


def test_update_is_cheap():
    con = plain_console()
    lv = levels_at([-6, -6])
    p = Reporter(console=con).progress(title="t", bus=BUS, total_frames=None)
    t0 = time.perf_counter()
    for i in range(20000):
        p.update(frames=i * 256, levels=lv, buffer_fill=0.5, link_rate=4e5, now=i * 1e-4)
    assert time.perf_counter() - t0 < 1.0
    p.close()
    assert len(output(con).splitlines()) == 0  # 2 s never elapsed


# --------------------------------------------------------------------------------------------
# Live view


def run_live(rep: Reporter, seconds: float = 1.0, step: float = 0.01, clip: bool = True) -> None:
    lv = Levels(BUS)
    with rep.progress(title="playing song.wav", bus=BUS, total_frames=48000 * 10) as p:
        for i in range(int(seconds / step) + 1):
            now = i * step
            levels_at([0.0 if clip else -6.0, -24.0], now=now, levels=lv)
            p.update(frames=round(now * 48000), levels=lv, buffer_fill=0.6, link_rate=392_000, now=now)


def test_live_view_renders_and_close_restores():
    con = tty_console()
    rep = Reporter(console=con)
    assert rep.interactive
    stderr = sys.stderr
    run_live(rep)
    out = output(con)
    assert "playing song.wav" in out
    assert "48000 Hz 32-bit stereo" in out
    assert "CLIP" in out and "link 392 kB/s" in out and "60%" in out
    assert "00:01.0 / 00:10.0" in out
    assert out.count("playing song.wav") <= 8  # ~4 redraws a second, not one per update
    assert out.index("\x1b[?25l") < out.rindex("\x1b[?25h")  # cursor hidden, then shown again
    assert sys.stderr is stderr
    # a live display is free again: another one starts
    run_live(rep, seconds=0.1, clip=False)
    assert output(con).rindex("\x1b[?25h") > len(out)


def test_live_view_closes_on_keyboard_interrupt():
    con = tty_console()
    rep = Reporter(console=con)
    stderr = sys.stderr
    with pytest.raises(KeyboardInterrupt):
        with rep.progress(title="recording", bus=BUS, total_frames=None) as p:
            p.update(frames=4800, levels=levels_at([-6, -6]), now=0.0)
            raise KeyboardInterrupt
    assert sys.stderr is stderr
    out = output(con)
    assert "recording" in out
    assert out.index("\x1b[?25l") < out.rindex("\x1b[?25h")
    rep.error("interrupted")
    assert output(con).rstrip().endswith("interrupted")


def test_messages_during_live_view():
    con = tty_console()
    rep = Reporter(console=con)
    with rep.progress(title="playing", bus=BUS, total_frames=48000) as p:
        p.update(frames=0, now=0.0)
        rep.warn("late block")
        p.update(frames=24000, now=0.5)
    assert "late block" in output(con)


def test_live_view_compact_and_narrow():
    for width in (40, 120):
        con = tty_console(width)
        p = Reporter(console=con).progress(title="playing a.wav", bus=BUS, total_frames=48000)
        p.update(frames=1000, levels=levels_at([-6, -70]), buffer_fill=0.5, link_rate=1e5, now=0.0)
        p.close()
        shown = tty_console(width)
        shown.print(p.render(0.0))
        lines = output(shown).splitlines()
        assert len(lines) == 5  # title, time, L, R, buffer + link
        assert all(len(SGR.sub("", line)) <= width for line in lines)


def test_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    con = tty_console()
    rep = Reporter(console=con)
    rep.error("boom")
    run_live(rep, seconds=0.3)
    assert color_params(output(con))  # colours by default on a terminal

    monkeypatch.setenv("NO_COLOR", "1")
    con = tty_console()
    rep = Reporter(console=con)
    rep.error("boom")
    rep.warn("careful")
    run_live(rep, seconds=0.3)
    out = output(con)
    assert "i2s: error: boom" in SGR.sub("", out) and "CLIP" in out
    assert color_params(out) == []


def test_a_live_sources_clocks_are_on_the_status_line_and_in_the_view():
    con = plain_console()
    rep = Reporter(console=con, interval=1.0)
    with rep.progress(title="playing stdin", bus=BUS, total_frames=None) as p:
        p.update(frames=0, now=0.0)
        p.update(frames=48000, link_rate=392_000, note="drift +301 ppm (corrected), reserve 57 ms", now=1.0)
    assert output(con).splitlines() == ["i2s: 00:01.0  link 392 kB/s  drift +301 ppm (corrected), reserve 57 ms"]
    con = tty_console()
    with Reporter(console=con).progress(title="playing stdin", bus=BUS, total_frames=None) as p:
        p.update(frames=48000, note="drift +301 ppm (corrected), reserve 57 ms", now=1.0)
    assert "drift +301 ppm (corrected), reserve 57 ms" in output(con)
