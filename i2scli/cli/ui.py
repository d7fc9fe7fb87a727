"""Everything the commands print on stderr while they run: messages, progress, the end summary.

House rules: stdout carries only data (audio, ``--json``); all of this goes to stderr.

* Interactive stderr (a terminal, as rich sees it: ``console.is_terminal``) gets a rich
  live view, refreshed about 4 times a second, and styled messages. rich honours
  ``NO_COLOR`` (no colours, attributes such as bold stay), ``TERM=dumb`` and ``FORCE_COLOR``.
* Anything else (a pipe, a file, CI logs) gets plain text without escape codes: messages as
  they come, and one status line every `interval` seconds (2 s) while audio moves, e.g.
  ``i2s: 00:12.0 / 00:30.0  L -12.3 dBFS  R -11.9 dBFS  link 392 kB/s``.
* ``quiet`` silences info, progress and the summary; warnings and errors always print.

`Progress.update` is meant to be called once per audio block: it only stores what it is
given and redraws when its throttle allows, computing levels only then.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from i2scli.audio.busformat import describe_format
from i2scli.errors import Worded, visible

if TYPE_CHECKING:  # rich only when stderr is a terminal, numpy only with audio: both imported late
    from rich.console import Console, RenderableType
    from rich.text import Text

    from i2scli.audio import Levels
    from i2scli.audio.busformat import BusFormat

__all__ = [
    "METER_FLOOR_DB",
    "Progress",
    "Reporter",
    "format_dbfs",
    "format_rate",
    "format_summary",
    "format_time",
]

#: The level meters span METER_FLOOR_DB .. 0 dBFS.
METER_FLOOR_DB = -60.0
#: Meter zones: green below -18 dBFS, yellow up to -6, red above.
_ZONES = ((-18.0, "green"), (-6.0, "yellow"), (math.inf, "red"))
#: How long a CLIP marker stays lit after the last clipped sample (seconds).
CLIP_HOLD = 3.0
_PREFIX = "i2s: "


# --------------------------------------------------------------------------------------------
# Formatting helpers (pure)


def format_dbfs(x: float | None) -> str:
    """``-3.1`` for -3.14; ``-inf`` for None (silence in JSON summaries), -inf or NaN."""
    if x is None or math.isnan(x) or x == -math.inf:
        return "-inf"
    text = f"{x:.1f}"
    return "0.0" if text == "-0.0" else text


def format_time(seconds: float) -> str:
    """``00:12.3`` (minutes:seconds.tenths, truncated), ``1:02:03`` from an hour on."""
    tenths = max(0, int(seconds * 10 + 1e-6))
    return _format_tenths(tenths)


def _format_tenths(tenths: int) -> str:
    secs, t = divmod(tenths, 10)
    mins, s = divmod(secs, 60)
    if mins >= 60:
        h, m = divmod(mins, 60)
        return f"{h}:{m:02d}:{s:02d}"
    return f"{mins:02d}:{s:02d}.{t}"


def format_rate(bytes_per_second: float) -> str:
    """``392 kB/s`` (1 kB = 1000 bytes)."""
    return f"{bytes_per_second / 1000:.0f} kB/s"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_summary(summary: dict) -> str:
    """The one-line end summary of a command, from its summary dict; keys that are missing
    (or None) are left out. E.g.::

        played song.wav: 10.00 s (480000 frames) at 48000 Hz 32-bit stereo; 0 underruns, 0 overruns;
        peak -3.1/-3.0 dBFS, 0 clipped; link 412 kB/s

    Keys: ``action`` (``played``, ``recorded``...), ``file``, ``frames``, ``seconds``, ``rate``,
    ``bits``, ``channels``, ``underruns``, ``overruns``, ``lost_frames`` (frames the xruns cost, shown
    when not 0), ``crc_errors`` (shown when not 0),
    ``peak_dbfs`` (a list per channel, None = silence, or one number), ``clipped``,
    ``link_rate`` (bytes/s), ``fit`` (what --fit changed, and the SNR it cost).
    """
    s = {k: v for k, v in summary.items() if v is not None}
    head = " ".join(str(s[k]) for k in ("action", "file") if k in s)

    what = []
    seconds = s.get("seconds")
    if seconds is None and "frames" in s and s.get("rate"):
        seconds = s["frames"] / s["rate"]
    if seconds is not None:
        what.append(f"{seconds:.2f} s")
        if "frames" in s:
            what.append(f"({s['frames']} frames)")
    elif "frames" in s:
        what.append(f"{s['frames']} frames")
    fmt = describe_format(s.get("rate"), s.get("bits"), s.get("channels"))
    if fmt:
        what.append(f"at {fmt}")

    groups = [" ".join(what)] if what else []
    counters = [_plural(s[k], word) for k, word in (("underruns", "underrun"), ("overruns", "overrun")) if k in s]
    if counters and s.get("lost_frames"):
        counters[-1] += f" ({_plural(s['lost_frames'], 'frame')} lost)"
    if s.get("crc_errors"):
        counters.append(_plural(s["crc_errors"], "CRC error"))
    if counters:
        groups.append(", ".join(counters))
    levels = []
    if "peak_dbfs" in s:
        peaks = s["peak_dbfs"]
        peaks = peaks if isinstance(peaks, (list, tuple)) else [peaks]
        if peaks:
            levels.append(f"peak {'/'.join(format_dbfs(p) for p in peaks)} dBFS")
    if "clipped" in s:
        levels.append(f"{s['clipped']} clipped")
    if levels:
        groups.append(", ".join(levels))
    if "link_rate" in s:
        groups.append(f"link {format_rate(s['link_rate'])}")
    fit = s.get("fit")
    if fit and fit.get("method") != "lossless":
        snr = fit.get("snr_db")
        groups.append(f"--fit {fit['method']}, " + (f"{snr:.1f} dB SNR" if snr is not None else "bit-exact"))

    if s.get("reader_closed"):
        groups.append("ended by its reader (standard output closed)")

    body = "; ".join(groups)
    if head and body:
        return f"{head}: {body}"
    return head or body


def _to_dbfs(value: float, full_scale: float) -> float:
    """20·log10(value / full_scale); -inf for 0 (as audio.to_dbfs, without importing numpy)."""
    return 20 * math.log10(value / full_scale) if value > 0 else -math.inf


def _one_line(msg: object) -> str:
    """A message on one line, with any control or escape character a board sent made visible; one
    that names settings (errors.Worded) names them by their flags."""
    if isinstance(msg, Worded):
        from i2scli.cli.advice import setting_flag

        msg = msg.say(setting_flag)
    return visible(" ".join(str(msg).split()))


# --------------------------------------------------------------------------------------------
# Reporter


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Reporter:
    """Messages and progress on stderr, following the house rules (see the module doc).

    `console` defaults to ``Console(stderr=True)``; tests pass one that records to a StringIO.
    `interval` is the plain status line period (seconds) on non-interactive stderr.
    """

    def __init__(self, *, quiet: bool = False, console: Console | None = None, interval: float = 2.0,
                 refresh_per_second: float = 4.0):
        self.quiet = quiet
        if console is None and _stderr_is_terminal():
            from rich.console import Console

            console = Console(stderr=True)
        self.console = console  # None: plain lines on a non-terminal stderr, and no rich at all
        self.interval = interval
        self.refresh_per_second = refresh_per_second

    @property
    def interactive(self) -> bool:
        """Whether stderr is a terminal (rich styling and live views)."""
        return self.console is not None and self.console.is_terminal

    def _emit(self, text: Text | str) -> None:
        try:
            if self.console is None:
                sys.stderr.write(f"{text}\n")
                sys.stderr.flush()
                return
            from rich.text import Text

            if not isinstance(text, Text):
                text = Text(text)
            self.console.print(text, soft_wrap=True, highlight=False, markup=False, emoji=False)
        except (BrokenPipeError, ValueError, OSError):  # stderr gone (closed pipe or file): nowhere to report
            pass

    def _styled(self, prefix: str, style: str, msg: object) -> None:
        if self.console is None:
            self._emit(prefix + _one_line(msg))
            return
        from rich.text import Text

        self._emit(Text.assemble((prefix, style), _one_line(msg)))

    def info(self, msg: str) -> None:
        """One line on stderr, unless quiet."""
        if not self.quiet:
            self._emit(_one_line(msg))

    def warn(self, msg: str) -> None:
        """``i2s: warning: ...``, always (even when quiet)."""
        self._styled(f"{_PREFIX}warning: ", "bold yellow", msg)

    def error(self, msg: str) -> None:
        """``i2s: error: ...``, always, on one line."""
        self._styled(f"{_PREFIX}error: ", "bold red", msg)

    def summary(self, summary: dict) -> None:
        """The end summary line (`format_summary`), unless quiet."""
        if not self.quiet:
            self._emit(visible(format_summary(summary)))

    def progress(self, *, title: str, bus: BusFormat, total_frames: int | None,
                 channels_names: Sequence[str] | None = None) -> Progress:
        """A progress display for a transfer of `total_frames` frames (None: unknown, e.g. a
        recording until Ctrl-C) in format `bus`. Use it as a context manager, or call `close`."""
        if self.quiet:
            mode = "off"
        elif self.interactive:
            mode = "live"
        else:
            mode = "plain"
        return Progress(self, mode=mode, title=title, bus=bus, total_frames=total_frames,
                        channels_names=channels_names)


# --------------------------------------------------------------------------------------------
# Progress


class Progress:
    """A running transfer's display; made by `Reporter.progress`.

    `mode` is ``live`` (rich live view, ~4 redraws/s), ``plain`` (a status line every
    `Reporter.interval` seconds) or ``off``. The live view starts at the first `update`
    and is removed by `close` (also on exceptions), which leaves the cursor visible.
    """

    def __init__(self, reporter: Reporter, *, mode: str, title: str, bus: BusFormat, total_frames: int | None,
                 channels_names: Sequence[str] | None = None):
        self.reporter = reporter
        self.console = reporter.console
        self.mode = mode
        self.title = title
        self.bus = bus
        self.total_frames = total_frames
        if channels_names is None:
            channels_names = ("L", "R") if bus.channels == 2 else ("M",)
        self.channels_names = list(channels_names)
        self.frames = 0
        self.levels: Levels | None = None
        self.buffer_fill: float | None = None
        self.link_rate: float | None = None
        self.note: str | None = None  # a live source's clocks: the drift and the reserve held
        self.now: float | None = None
        self._t0: float | None = None
        self._last_draw: float | None = None
        self._period = 1.0 / reporter.refresh_per_second if mode == "live" else reporter.interval
        self._clip_seen: list[int] = []
        self._clip_at: list[float] = []
        self._live = None
        self._closed = mode == "off"

    # -- the per-block call ----------------------------------------------------------------

    def update(self, *, frames: int, levels: Levels | None = None, buffer_fill: float | None = None,
               link_rate: float | None = None, note: str | None = None, now: float | None = None) -> None:
        """Record progress: `frames` transferred so far, the `levels` being fed (optional),
        the board buffer fill 0..1 and the link rate in bytes/s (optional). `now` is the
        monotonic clock (`time.monotonic` by default), the same one `Levels.feed` used.
        Cheap; redraws only when due."""
        if self._closed:
            return
        now = time.monotonic() if now is None else now
        self.frames = frames
        self.now = now
        if levels is not None:
            self.levels = levels
        if buffer_fill is not None:
            self.buffer_fill = buffer_fill
        if link_rate is not None:
            self.link_rate = link_rate
        if note is not None:
            self.note = note
        if self._t0 is None:
            self._t0 = now
            if self.mode == "plain":
                self._last_draw = now  # first status line after one interval
        if self._last_draw is not None and now - self._last_draw < self._period:
            return
        self._last_draw = now
        self._draw(now)

    def _draw(self, now: float) -> None:
        self._check_clips(now)
        if self.mode == "plain":
            self.reporter._emit(self.status_line(now))
            return
        renderable = self.render(now)
        try:
            if self._live is None:
                from rich.live import Live

                self._live = Live(renderable, console=self.console, auto_refresh=False, transient=True,
                                  redirect_stdout=False, redirect_stderr=True)
                self._live.start(refresh=True)
            else:
                self._live.update(renderable, refresh=True)
        except (BrokenPipeError, ValueError):
            self.close()

    # -- what is shown -----------------------------------------------------------------------

    def _check_clips(self, now: float) -> None:
        """Light CLIP for channels whose clipped count grew since the last look."""
        if self.levels is None:
            return
        counts = list(self.levels.clipped)
        if len(self._clip_seen) != len(counts):
            self._clip_seen = [0] * len(counts)
            self._clip_at = [-math.inf] * len(counts)
        for c, n in enumerate(counts):
            if n > self._clip_seen[c]:
                self._clip_seen[c], self._clip_at[c] = n, now

    def _clipping(self, c: int, now: float) -> bool:
        return c < len(self._clip_at) and now - self._clip_at[c] < CLIP_HOLD

    def _times(self) -> tuple[int, int | None]:
        """Elapsed and total audio time in tenths of a second (total None when unknown)."""
        rate = self.bus.rate
        elapsed = self.frames * 10 // rate
        if self.total_frames is None:
            return elapsed, None
        total = self.total_frames * 10 // rate
        return min(elapsed, total), total

    def _meter_values(self, now: float) -> list[tuple[str, float, float, bool]]:
        """Per channel: name, block peak dBFS, held peak dBFS, clipping."""
        lv = self.levels
        if lv is None:
            return []
        held = lv.held_peak_dbfs(now)
        fs = lv.bus.full_scale
        out = []
        for c, (b, h) in enumerate(zip(lv.block_peak, held)):
            name = self.channels_names[c] if c < len(self.channels_names) else str(c)
            out.append((name, _to_dbfs(b, fs), h, self._clipping(c, now)))
        return out

    def status_line(self, now: float | None = None) -> str:
        """The plain status line, e.g. ``i2s: 00:12.0 / 00:30.0  L -12.3 dBFS  R -11.9 dBFS  link 392 kB/s``.

        Levels are the held peaks (the loudest block of the last few seconds)."""
        now = self.now if now is None else now
        now = time.monotonic() if now is None else now
        self._check_clips(now)
        elapsed, total = self._times()
        parts = [_format_tenths(elapsed) + (f" / {_format_tenths(total)}" if total is not None else "")]
        for name, _, held, clip in self._meter_values(now):
            parts.append(f"{name} {format_dbfs(held)} dBFS" + (" CLIP" if clip else ""))
        if self.buffer_fill is not None:
            parts.append(f"buffer {self.buffer_fill * 100:.0f}%")
        if self.link_rate is not None:
            parts.append(f"link {format_rate(self.link_rate)}")
        if self.note:
            parts.append(self.note)
        return _PREFIX + "  ".join(parts)

    def render(self, now: float | None = None) -> RenderableType:
        """The live view (4-6 lines): title and format; time with a progress bar; a meter per
        channel (block peak bar, held peak marker, CLIP); buffer fill and link rate. Terminals
        narrower than about 70 columns get a compact variant."""
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        now = self.now if now is None else now
        now = time.monotonic() if now is None else now
        self._check_clips(now)
        meters = self._meter_values(now)
        ascii_only = not (self.console.encoding or "").lower().startswith("utf")
        label_w = max([len(m[0]) for m in meters] + [6 if self.buffer_fill is not None else 4])
        room = self.console.width - label_w - 2
        compact = room - 28 < 16
        width = max(6, min(40, room - (15 if compact else 28)))

        header = Text.assemble((self.title, "bold"), "  ", (self.bus.describe(), "dim"),
                               no_wrap=True, overflow="ellipsis")
        grid = Table.grid(padding=(0, 1))
        grid.add_column(justify="right", no_wrap=True, overflow="crop")
        grid.add_column(no_wrap=True, overflow="crop")
        grid.add_column(no_wrap=True, overflow="crop")

        elapsed, total = self._times()
        if total is not None:
            bar = ProgressBar(total=max(total, 1), completed=elapsed if total else 1, width=width)
            times = Text.assemble(_format_tenths(elapsed), "/" if compact else " / ", _format_tenths(total))
            if not compact:
                times.append("  -" + _format_tenths(total - elapsed), style="dim")
            grid.add_row("", bar, times)
        else:
            grid.add_row("", Text.assemble(_format_tenths(elapsed), (" elapsed", "dim")), "")

        for name, block, held, clip in meters:
            if compact:
                numbers = Text(f"{format_dbfs(held):>5}")
            else:
                numbers = Text.assemble(f"{format_dbfs(block):>5} dBFS", (f"  peak {format_dbfs(held):>5}", "dim"))
            if clip:
                numbers.append(" " if compact else "  ")
                numbers.append("CLIP", style="bold reverse red")
            grid.add_row(Text(name, style="bold"), _meter(block, held, width, ascii_only), numbers)

        link = f"{'' if compact else 'link '}{format_rate(self.link_rate)}" if self.link_rate is not None else None
        if self.buffer_fill is not None:
            fill = min(max(self.buffer_fill, 0.0), 1.0)
            rest = Text(f"{self.buffer_fill * 100:3.0f}%")
            if link:
                rest.append(("  " if compact else "   ") + link)
            grid.add_row("buffer", ProgressBar(total=1000, completed=round(fill * 1000), width=width,
                                               complete_style="cyan", finished_style="cyan"), rest)
        elif link:
            grid.add_row("link", Text(format_rate(self.link_rate)), "")
        if self.note:
            grid.add_row("live", Text(self.note), "")
        return Group(header, grid)

    # -- the end -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the live view (it is removed; the cursor is shown again). Idempotent."""
        self._closed = True
        live, self._live = self._live, None
        if live is not None:
            try:
                live.stop()
            except (BrokenPipeError, ValueError):
                pass

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _meter(block_db: float, held_db: float, width: int, ascii_only: bool = False) -> Text:
    """A level meter from METER_FLOOR_DB to 0 dBFS: the block peak as a bar coloured by zone,
    the held peak as a marker."""
    from rich.text import Text

    full, empty, mark = ("#", "-", "|") if ascii_only else ("━", "─", "┃")

    def cells(db: float) -> int:
        if db == -math.inf or math.isnan(db):
            return 0
        frac = (db - METER_FLOOR_DB) / -METER_FLOOR_DB
        return round(min(max(frac, 0.0), 1.0) * width)

    filled, held_at = cells(block_db), cells(held_db) - 1
    text = Text()
    run, run_style = "", None
    for i in range(width):
        if i == held_at:
            char, style = mark, "bold " + _zone(i, width)
        elif i < filled:
            char, style = full, _zone(i, width)
        else:
            char, style = empty, "dim"
        if style != run_style and run:
            text.append(run, style=run_style)
            run = ""
        run, run_style = run + char, style
    if run:
        text.append(run, style=run_style)
    return text


def _zone(i: int, width: int) -> str:
    db = METER_FLOOR_DB * (1 - (i + 0.5) / width)
    return next(style for limit, style in _ZONES if db < limit)


def format_info(info: dict) -> str:
    """`i2s info` for people: identity, memory, agent, link, and which standard streams fit."""
    agent = info.get("agent") or {}
    lines = [
        f"board       {info.get('board')} at {info.get('port')}",
        f"MicroPython {info.get('micropython')}   machine.I2S: {'yes' if info.get('i2s') else 'NO'}"
        f"   free RAM {info.get('mem_free', 0) // 1024} kB   input buffer {info.get('input_buffer')} B",
        f"agent       {agent.get('version')} ({'installed' if agent.get('installed') else 'uploaded to RAM'})"
        f"   preset {info.get('preset') or 'none (give --board or pins)'}",
    ]
    if "wire_coder" in info:
        coder = info["wire_coder"]
        lines.append("compression " + ({"installed": "lossless wire coder installed",
                                        "on demand": "lossless wire coder, loaded when a stream needs it"}
                                       .get(coder, "none (the firmware runs no viper code)")))
    link = info.get("link") or {}
    baud = f"UART at {link['baud']} baud" if link.get("baud") else None
    if "up_bytes_per_s" in link:
        lines.append(f"link        to board {format_rate(link['up_bytes_per_s'])}, "
                     f"from board {format_rate(link['down_bytes_per_s'])} (measured)" + (f"; {baud}" if baud else ""))
    elif baud:
        lines.append(f"link        {baud}")
    fits = info.get("fits")
    if fits:
        lines.append("streams     play  record")
        for f in fits:
            lines.append(f"  {f['stream']:<26} {'yes' if f['play'] else 'no':<5} {'yes' if f['record'] else 'no'}")
    return "\n".join(visible(line) for line in lines)  # names and versions as the board sent them
