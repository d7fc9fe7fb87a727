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

from i2scli import audio
from i2scli.errors import Exit
from i2scli.link import BoardError, LinkError, NoDevice


@contextmanager
def stop_on_signals(stop: threading.Event):
    """SIGINT, SIGTERM and SIGHUP ask the running command to stop (and keep what it has).
    A SIGINT that was ignored when we started (a background job of a non-interactive shell)
    stays ignored, as the shell intended."""
    handled = [signal.SIGTERM, signal.SIGHUP]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        handled.append(signal.SIGINT)
    old = {}

    def on_signal(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        stop.set()
        stop.signal = signum

    for sig in handled:
        old[sig] = signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def run_command(job: Callable, *, quiet: bool, finish: Callable) -> None:
    from i2scli.ui import Reporter

    reporter = Reporter(quiet=quiet)
    stop = threading.Event()
    try:
        with stop_on_signals(stop):
            summary = job(reporter, stop)
    except audio.AudioError as e:
        _fail(reporter, e, Exit.FILE)
    except NoDevice as e:
        _fail(reporter, e, Exit.NO_DEVICE)
    except BoardError as e:
        _fail(reporter, e, Exit.BOARD)
    except LinkError as e:
        partial = getattr(e, "partial", None)
        if partial is not None:
            reporter.warn(f"kept {partial['frames']} frames received before the link failed")
        _fail(reporter, e, Exit.INTERRUPTED if stop.is_set() else Exit.LINK)
    except ValueError as e:
        _fail(reporter, e, Exit.USAGE)
    except KeyboardInterrupt:
        reporter.error("interrupted")
        sys.exit(Exit.INTERRUPTED)
    finish(summary, reporter)


def _fail(reporter, e: BaseException, code: Exit) -> None:
    text = str(e).strip().splitlines()
    reporter.error(text[0] if text else type(e).__name__)
    sys.exit(code)


@contextmanager
def _live(reporter, title: str, bus: audio.BusFormat, total: int | None, watch):
    """A progress view fed from the stream's Watch by a small thread."""
    done = threading.Event()
    with reporter.progress(title=title, bus=bus, total_frames=total) as prog:
        def pump():
            while not done.wait(0.25):
                prog.update(frames=watch.frames, levels=watch.levels, link_rate=watch.link_rate)

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        try:
            yield
        finally:
            done.set()
            t.join()
            prog.update(frames=watch.frames, levels=watch.levels, link_rate=watch.link_rate)


def run_play(agent, reporter, stop, what, blocks, bus, opts, total, stats) -> dict:
    from i2scli import session

    watch = session.Watch(levels=audio.Levels(bus))
    ready = {}

    def on_ready(cfg):
        ready["cfg"] = cfg
        reporter.info(f"playing {what} on {session.describe_config(cfg, agent)}")

    with _live(reporter, f"playing {what}", bus, total, watch):
        summary = session.play(agent, agent.port, blocks, bus, opts, stop=stop, watch=watch, stats=stats,
                               on_ready=on_ready)
    summary["file"] = what
    return summary


def run_record(agent, reporter, stop, file, bus, opts, until, subtype) -> dict:
    from i2scli import session

    watch = session.Watch(levels=audio.Levels(bus))
    out = audio.open_output(file, bus, subtype=subtype)
    try:
        def on_ready(cfg):
            reporter.info(f"recording {file} from {session.describe_config(cfg, agent)}")

        with _live(reporter, f"recording {file}", bus, until.frames, watch):
            return session.record(agent, agent.port, out, bus, opts, until, stop=stop, watch=watch,
                                  on_ready=on_ready)
    finally:
        out.close()
