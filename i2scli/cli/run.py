"""Glue between click commands and the library: signals, progress, errors to exit codes.

Every user-caused failure ends here as one line on stderr and a documented exit code
(i2scli/errors.py); nothing the user can cause prints a traceback.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

from i2scli.cli import advice
from i2scli.errors import AudioError, Exit, visible
from i2scli.link.errors import BoardError, LinkError, NoDevice, TooFast

if TYPE_CHECKING:  # numpy comes with audio: only the commands that stream audio import it
    from i2scli import audio


@contextmanager
def stop_on_signals(stop: threading.Event):
    """SIGINT, SIGTERM and SIGHUP ask the running command to stop (and keep what it has): at
    once before a stream has started, tidily within a second once one runs (link/halt.py).
    A SIGINT that was ignored when we started (a background job of a non-interactive shell)
    stays ignored, as the shell intended."""
    handled = [signal.SIGTERM, signal.SIGHUP]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        handled.append(signal.SIGINT)
    old = {}

    from i2scli.link import halt

    def on_signal(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        stop.set()
        stop.signal = signum
        halt.signalled()  # before a stream has started: stop now, whatever we wait on

    halt.arm(stop)
    for sig in handled:
        old[sig] = signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
        halt.disarm()


def run_command(job: Callable, *, quiet: bool, finish: Callable, as_json: bool = False) -> None:
    """Run `job(reporter, stop)` and `finish(summary, reporter)`; every failure one line and its
    exit code. With `as_json`, a stream that ran and then failed (its error carries `partial`,
    the summary of what was done) still prints that summary on stdout, with `error` and `exit`."""
    from i2scli.cli.ui import Reporter

    reporter = Reporter(quiet=quiet)
    stop = threading.Event()
    try:
        with stop_on_signals(stop):
            summary = job(reporter, stop)
    except AudioError as e:
        _print_partial(e, Exit.FILE, as_json)
        _fail(reporter, e, Exit.FILE)
    except NoDevice as e:
        _fail(reporter, e, Exit.NO_DEVICE)
    except TooFast as e:  # our own words, with what would fit: not cut short
        _fail(reporter, advice.words(e), Exit.BOARD, limit=600)
    except BoardError as e:
        _fail(reporter, e, Exit.BOARD)
    except LinkError as e:
        partial = getattr(e, "partial", None)
        if partial is not None and partial.get("action") != "played" and partial["frames"]:
            reporter.warn(f"kept {partial['frames']} frames received before the link failed")
        code = Exit.INTERRUPTED if stop.is_set() else Exit.LINK
        _print_partial(e, code, as_json)
        _fail(reporter, e, code)
    except ValueError as e:
        _fail(reporter, e, Exit.USAGE)
    except KeyboardInterrupt:
        reporter.error("interrupted")
        sys.exit(Exit.INTERRUPTED)
    finish(summary, reporter)


def check_first(fn: Callable, *args):
    """`fn(*args)` before anything runs (no board touched, no process started), said as
    `run_command` says it: an AudioError (a file that cannot be used) is exit 1, a ValueError
    (a usage error) exit 2, each one line on stderr. Returns what `fn` returns."""
    from i2scli.cli.ui import Reporter

    try:
        return fn(*args)
    except AudioError as e:
        _fail(Reporter(), e, Exit.FILE)
    except ValueError as e:
        _fail(Reporter(), e, Exit.USAGE)


def _fail(reporter, e: BaseException | str, code: Exit, limit: int = 300) -> None:
    text = (advice.words(e) if isinstance(e, BaseException) else e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    # board-supplied text may be anything: keep the one line printable (escapes made visible) and short
    reporter.error(visible(line)[:limit])
    sys.exit(code)


def _print_partial(e: BaseException, code: Exit, as_json: bool) -> None:
    """--json: the summary of what a stream that failed did (`e.partial`), with the error's
    line and the exit code, on stdout."""
    partial = getattr(e, "partial", None)
    if not as_json or not isinstance(partial, dict):
        return
    import json

    import click

    text = str(e).strip().splitlines()
    click.echo(json.dumps({**partial, "error": text[0] if text else type(e).__name__, "exit": int(code)},
                          default=str))


@contextmanager
def _live(reporter, title: str, bus: audio.BusFormat, total: int | None, watch, note: Callable | None = None):
    """A progress view fed from the stream's Watch by a small thread; `note()`: a line of a live
    source's clocks (LiveMatch.view)."""
    done = threading.Event()
    with reporter.progress(title=title, bus=bus, total_frames=total) as prog:
        def pump():
            while not done.wait(0.25):
                if watch.first_audio is not None:  # not while the link is probed or the board refuses
                    prog.update(frames=watch.frames, levels=watch.levels, link_rate=watch.link_rate,
                                note=note() if note is not None else None)

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        try:
            yield
        finally:
            done.set()
            t.join()
            if watch.first_audio is not None:
                prog.update(frames=watch.frames, levels=watch.levels, link_rate=watch.link_rate)


def run_play(agent, reporter, stop, what, blocks, bus, opts, total, stats, live=False, clock=None) -> dict:
    """`live`: the source is a stream (a pipe): what the compression estimate waits for is kept
    short (session.STREAM_PEEK_SECONDS), so that it starts as soon as it comes. `clock`: its
    live.LiveMatch (the settings line says what it does, the summary's `live` what it measured)."""
    from i2scli import audio, session

    watch = session.Watch(levels=audio.Levels(bus))
    ready = {}

    def on_ready(cfg):
        ready["cfg"] = cfg
        reporter.info(f"playing {what} on {session.describe_config(cfg, agent)}"
                      + (f"; {clock.describe()}" if clock is not None else ""))
        if clock is not None:  # the ring takes this much at once, at the source's rate
            clock.start(cfg["ibuf"] // bus.frame_bytes * clock.rate // bus.rate)

    peek = session.STREAM_PEEK_SECONDS if live else session.PEEK_SECONDS
    if clock is not None and clock.mode == "live":
        peek = 0.0  # one block: what the estimate would hold back is latency the match then carries
    try:
        with _live(reporter, f"playing {what}", bus, total, watch, clock.view if clock is not None else None):
            summary = session.play(agent, agent.port, blocks, bus, opts, stop=stop, watch=watch, stats=stats,
                                   on_ready=on_ready,
                                   on_fit=lambda e, src, have: reporter.info(advice.fit_line(e, src, have)),
                                   peek_seconds=peek)
    finally:  # also when the stream failed: what was played is said
        _warn_nonfinite(reporter, stats, what)
    summary["file"] = what
    if clock is not None:
        summary["live"] = m = clock.summary()
        if m["drift_ppm"] is not None:
            band = m["fill_band_ms"]
            reporter.info(f"live: the board's clock {m['drift_ppm']:+.0f} ppm against the source's"
                          + (f", corrected ({m['correction_ppm']:+.0f} ppm on average)" if m["correction_ppm"]
                             is not None else ", corrected" if m["engaged"] else ", not corrected")
                          + (f", reserve held within {band[0]:.0f}..{band[1]:.0f} ms" if band else ""))
    return summary


def _warn_nonfinite(reporter, stats: audio.ConvertStats | None, what: str) -> None:
    if stats is not None and stats.nonfinite:
        reporter.warn(f"{stats.nonfinite} non-finite samples (NaN/inf) in {what} were played as silence")


def run_record(agent, reporter, stop, file, bus, opts, until, subtype, file_bus=None, keep=None, raw=False,
               split=None, matching=None) -> dict:
    """`file_bus`/`keep`: the file holds another format than the bus (record --slot/--shift):
    `keep` turns bus samples into it (session.record). `split(bus)`: the recording goes into
    files of a fixed length (splitfiles.SplitOutput: --max-file-time). `matching`: (mode,
    live.LiveParams) for an output a consumer reads as it comes (live.SinkMatch)."""
    from i2scli import audio, session

    fbus = file_bus or bus
    watch = session.Watch(levels=audio.Levels(fbus))
    out = split(fbus) if split is not None else audio.open_output(file, fbus, subtype=subtype, raw=raw)
    clock = None
    if matching is not None and out.pipe is not None:
        from i2scli.live import SinkMatch, sink_kind

        frame = fbus.channels * int(out.subtype[4:]) // 8
        clock = SinkMatch(fbus.rate, fbus.channels, fbus.bits, lambda: sum(out.pipe.queued()) // frame,
                          matching[0], sink_kind(out.pipe.fd, file), matching[1])
    try:
        def on_ready(cfg):
            reporter.info(f"recording {file} from {session.describe_config(cfg, agent, 'rx')}"
                          + (f"; {clock.describe()}" if clock is not None else ""))

        with _live(reporter, f"recording {file}", bus, until.frames, watch, clock.view if clock is not None else None):
            summary = session.record(agent, agent.port, out, bus, opts, until, stop=stop, watch=watch,
                                     on_ready=on_ready, keep=keep, after=clock.convert if clock is not None else None)
        if clock is not None:  # what the resampler held back for its kernel
            tail = clock.finish(fbus.dtype)
            if tail is not None:
                out.write(tail)
    except BaseException:
        # refused, failed or stopped before any audio: no file, and what was at FILE stays as it
        # was; once audio arrived the recording is in place and is kept, finished
        out.abandon()
        raise
    _finish_output(out, summary)
    if split is not None:
        summary.update(file=out.path, files=out.files, frames_per_file=out.per_file)
    if out.pipe is not None:  # what reached the pipe, once what was queued is written
        summary.update(frames=out.frames, seconds=out.frames / fbus.rate, reader_closed=out.reader_gone)
        if clock is not None:
            summary["live"] = m = clock.summary()
            if m["drift_ppm"] is not None and m["mode"] != "auto":  # (a reader that stalled is no clock)
                band = m["fill_band_ms"]
                reporter.info(f"live: the board's clock {m['drift_ppm']:+.0f} ppm against its reader's"
                              + (f", corrected ({m['correction_ppm']:+.0f} ppm on average)" if m["correction_ppm"]
                                 is not None else ", corrected" if m["engaged"] else ", not corrected")
                              + (f", backlog held within {band[0]:.0f}..{band[1]:.0f} ms" if band else ""))
        if out.pipe.error is not None:
            raise out.pipe.error
    return summary


def _finish_output(out, summary: dict) -> None:
    """A recording that ran: finished in place; stopped by a signal before any audio arrived,
    nothing was recorded, and what was at its path stays as it was."""
    if summary.get("interrupted") and not out.frames:
        out.abandon()
    else:
        out.close()


def timeline_path(timeline_vcd: str, n: int, cycles: int) -> str:
    """Where cycle `n`'s --timeline trace goes: the name given, or `t-N.vcd` with --cycles."""
    return timeline_vcd if cycles == 1 else timeline_vcd.replace(".vcd", f"-{n}.vcd")


def run_duplex(agent, reporter, stop, play_file, rec_template, bus, opts, dx, until, cycles, timeline_vcd) -> dict:
    import dataclasses

    from i2scli import audio, session
    from i2scli import timeline as tl
    from i2scli.audio import fit

    src_bus, fitted, tx_ratio = bus, None, None
    if opts.probe:
        def head() -> bytes:
            with audio.open_input(play_file) as inp:
                return b"".join(audio.play_blocks(inp, bus, max_frames=int(session.PEEK_SECONDS * inp.rate)))

        fitted = session.fit_duplex(agent, opts, bus, head if play_file else None)
        if fitted is None:
            tx_ratio = session.duplex_ratio(agent, bus, head if play_file else None)
        if opts.fit:
            rates = agent.link_rates()
            reporter.info(advice.fit_line(fitted, bus, min(rates["up"], rates["down"])))
        if fitted is not None:  # one bus: the recording takes the new rate and channels too
            bus = fitted.dst
            until = dataclasses.replace(until, **{k: round(getattr(until, k) * bus.rate / src_bus.rate)
                                                  for k in ("frames", "max_frames") if getattr(until, k)})
    results = []
    for n in range(1, cycles + 1):
        path = rec_template.replace("{n}", str(n))
        audio.check_output_path(path)
        out = audio.open_output(path, bus)
        fitter = None
        echo = None
        inp = None
        stats = audio.ConvertStats()
        try:
            if play_file:
                inp = audio.open_input(play_file)
                source = audio.play_blocks(inp, src_bus, stats=stats)
                if fitted is not None:
                    fitter = fit.Fitter(src_bus, bus)
                    source = session._fitted(fitter, source)
            else:
                echo = session.EchoSource()
                source = echo
            watch = session.Watch(levels=audio.Levels(bus))

            def on_ready(cfg, n=n):
                if n == 1:
                    reporter.info(f"duplex {dx.order} on {session.describe_config({**cfg, **cfg['tx']}, agent)}; "
                                  f"RX sd={cfg['rx']['sd']}, DIR={cfg['dir']}, switch delay "
                                  f"{cfg['switch_delay_us']} us")

            with _live(reporter, f"duplex {n}/{cycles}: {path}", bus, until.frames, watch):
                r = session.duplex(agent, agent.port, out, source, bus, opts, dx, until, stop=stop, watch=watch,
                                   echo=echo, on_ready=on_ready, tx_ratio=tx_ratio)
        except BaseException as e:
            out.abandon()  # as record's: kept once audio arrived, else what was there stays
            if cycles > 1 and isinstance(getattr(e, "partial", None), dict):
                e.partial = {**e.partial, "cycle": n, "cycles_done": len(results)}
            raise
        else:
            _finish_output(out, r)
        finally:
            if inp is not None:
                inp.close()
            if n == 1 and play_file:  # the same file plays every cycle: say it once
                _warn_nonfinite(reporter, stats, play_file + (" (each cycle)" if cycles > 1 else ""))
        r["nonfinite"] = stats.nonfinite
        r["fit"] = fitter.summary() if fitter else session._lossless_fit(bus) if opts.fit else None
        for sw in tl.switches(r["timeline"]):
            reporter.info(f"cycle {n} switch: {tl.describe_switch(sw)}")
        if timeline_vcd:
            tl.write_vcd(timeline_path(timeline_vcd, n, cycles), r["timeline"], dx.dir_rx_level)
        results.append(r)
        if stop.is_set():
            break
    if len(results) == 1:
        return results[0]
    total = {k: sum(r[k] for r in results) for k in ("frames", "played_frames", "underruns", "overruns",
                                                     "crc_errors", "resyncs", "seq_gaps", "clipped",
                                                     "nonfinite")}
    return {"action": "duplex", "cycles": results, **total, "recorded_frames": total["frames"],
            "seconds": total["frames"] / bus.rate, "rate": bus.rate, "bits": bus.bits, "channels": bus.channels,
            "clock_gaps_us": [g for r in results for g in r["clock_gaps_us"]],
            "gap_exceeded": any(r["gap_exceeded"] for r in results),
            "interrupted": any(r["interrupted"] for r in results), "file": rec_template,
            "fit": results[0]["fit"]}
