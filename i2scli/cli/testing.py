"""`i2s test`: the loopback test, on one board or many at once."""

from __future__ import annotations

import functools

import click

from i2scli.cli import main
from i2scli.cli.common import (
    LOOP_NAMES,
    _baud_option,
    _rig_options,
    rig_boards,
)
from i2scli.units import DURATION, FINITE, LEVEL, RATE, RING, Finite


# -- test ---------------------------------------------------------------------------------------
def _nonneg(ctx, param, value):
    if value is not None and value < 0:
        raise click.BadParameter(f"must not be negative, not {value:g}", ctx, param)
    return value


def _plot_path(ctx, param, value):
    if value is not None and not value.lower().endswith((".png", ".svg")):
        raise click.BadParameter(f"{value!r} is neither .png nor .svg", ctx, param)
    return value


def _wav_path(ctx, param, value):
    if value is not None and not value.lower().endswith(".wav"):
        raise click.BadParameter(f"{value!r} is not a .wav file name", ctx, param)
    return value


def _limit_options(f):
    """An option for each limit of `Limits` (loopback/limits.py), in field order: its name with
    dashes, type, help and value name come from the field's `Spec`; the default is None (the
    limits file, else `Limits.run_defaults`)."""
    from i2scli.loopback.limits import Limits

    types = {"number": FINITE, "count": int, "duration": DURATION}
    for name, spec in reversed(Limits.specs().items()):
        f = click.option(f"--{name.replace('_', '-')}", type=types[spec.kind], metavar=spec.metavar,
                         callback=_nonneg if spec.nonneg else None, help=spec.help or None)(f)
    return f


@main.command("test")
@click.option("--signal", "kind", type=click.Choice(["sine", "multitone", "sweep"]), default="sine",
              show_default=True, help="Test signal (the stimulus after the alignment marker).")
@click.option("--freq", type=Finite(min=1), default=997.0, show_default=True, metavar="HZ",
              help="Frequency of the sine.")
@click.option("--level", type=LEVEL, default=-6.0, show_default=True, metavar="DBFS",
              help="Level of the stimulus (per tone for multitone).")
@click.option("-d", "--duration", type=DURATION, default="1.2s", show_default=True, metavar="DUR",
              help="Length of the stimulus.")
@click.option("-r", "--rate", type=RATE, metavar="HZ",
              help="Sample rate (default: the best the link carries both ways, 48000 first).")
@click.option("-b", "--bits", type=click.Choice(["16", "32"]), help="Sample size (default: 32 if it fits, else 16).")
@click.option("-c", "--channels", type=click.Choice(["1", "2"]), help="Channels (default: 2 if it fits, else 1).")
@click.option("--tx-id", type=int, metavar="N", help="TX I2S bus id (default: the two-bus preset's).")
@click.option("--tx-sck", metavar="PIN")
@click.option("--tx-ws", metavar="PIN")
@click.option("--tx-sd", metavar="PIN")
@click.option("--tx-mck", metavar="PIN")
@click.option("--rx-id", type=int, metavar="N", help="RX I2S bus id (default: the two-bus preset's).")
@click.option("--rx-sck", metavar="PIN")
@click.option("--rx-ws", metavar="PIN")
@click.option("--rx-sd", metavar="PIN")
@click.option("--rx-mck", metavar="PIN")
@click.option("--board", metavar="NAME", envvar="I2S_BOARD",
              help=f"Two-bus preset: {', '.join(LOOP_NAMES)} (default: detected).")
@click.option("--ibuf", type=RING, metavar="BYTES", help="I2S DMA ring size of each bus.")
@click.option("--timeout", type=DURATION, default="3s", show_default=True, metavar="DUR",
              help="Board gives up if the host is silent this long.")
@click.option("--no-probe", is_flag=True, help="Skip measuring the link before streaming.")
@click.option("--probe", "fresh_probe", is_flag=True, help="Measure the link even if remembered.")
@click.option("--limits", "limits_file", type=click.Path(), metavar="FILE.toml",
              help="Limits from a TOML file (options below override it).")
@_limit_options
@click.option("--json", "as_json", is_flag=True, help="Every measure and verdict as JSON on stdout.")
@click.option("--junit", type=click.Path(), metavar="FILE.xml", help="Write a JUnit XML report.")
@click.option("--plot", type=click.Path(), callback=_plot_path, metavar="FILE.png|.svg",
              help="Draw the spectra, the glitches and a sweep's response (needs: pip install 'i2scli[plot]').")
@click.option("--save-recording", type=click.Path(), callback=_wav_path, metavar="FILE.wav",
              help="Keep what RX recorded, as it came (marker, stimulus and all), to check it with other tools.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@click.option("-p", "--port", "ports", envvar="I2S_PORT", multiple=True, default=["auto"], show_default=True,
              metavar="PORT", help="Serial port or URL (env I2S_PORT); repeat it to test several boards at once.")
@_baud_option
@functools.partial(_rig_options, many=True)
@click.pass_context
def test_cmd(ctx, kind, freq, level, duration, rate, bits, channels, board, ibuf, timeout, no_probe, fresh_probe,
             limits_file, as_json, junit, plot, save_recording, quiet, ports, baud, **kw):
    """Loopback test: play a test signal on one I2S bus, record another, measure and judge.

    Wire the TX bus's SD to the RX bus's SD (on the virtual board: sim://fast?loopback=0>1).
    One line per check (PASS/FAIL) and a verdict; exit 7 when a check fails. Latency is the
    path between the TX and RX pins, the board's own buffering taken out. With -p repeated,
    every board is tested at once, each in its own process: a verdict per board, exit 0 only
    when all passed, 7 when a check failed on any. docs/test.md.
    """
    import dataclasses

    from i2scli.cli.run import check_first, run_command
    from i2scli.loopback import analysis
    from i2scli.targets.boards import parse_pin

    top = rate or 48000  # the highest rate i2s test chooses (format_choice.RATES)
    if freq >= top / 2 and kind == "sine":
        raise click.BadParameter(f"{freq:g} Hz is not below the Nyquist frequency of {top} Hz ({top / 2:g} Hz)"
                                 + ("" if rate else ", the highest rate i2s test chooses"), param_hint="--freq")
    given = {k: kw.pop(k) for k in analysis.Limits.specs()}
    # the files first, before any board is touched: a limits file that is missing or wrong is a
    # usage error (exit 2), an output that cannot be written a file error (exit 1); one line each
    limits = (check_first(analysis.load_limits, limits_file) if limits_file
              else analysis.Limits.run_defaults())
    try:
        limits = dataclasses.replace(limits, **{k: v for k, v in given.items() if v is not None})
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    ignore = analysis.IGNORE_START_S if limits.ignore_start is None else limits.ignore_start
    window = max(analysis.WINDOW_S, 2 / freq if kind == "sine" else analysis.WINDOW_S)
    if ignore + window > duration - min(0.1, duration / 4):  # the scan ends 0.1 s before the stimulus does
        raise click.BadParameter(f"{ignore * 1000:g} ms leaves less than a {window * 1000:g} ms window of the "
                                 f"{duration:g} s stimulus to judge: ignore less or play longer (-d)",
                                 param_hint="--ignore-start")
    buses = {d: {k: (parse_pin(kw[f"{d}_{k}"]) if k != "id" else kw[f"{d}_{k}"])
                 for k in ("id", "sck", "ws", "sd", "mck")} for d in ("tx", "rx")}
    given = (rate, int(bits) if bits else None, int(channels) if channels else None)
    ports = list(ports)
    if len(set(ports)) < len(ports):
        raise click.BadParameter("the same port given twice", param_hint="-p")
    from click.core import ParameterSource

    named = rig_boards(ctx)
    if named is not None:  # a rig's boards, each with its own settings; and any -p given beside them
        if ctx.get_parameter_source("ports") is ParameterSource.COMMANDLINE:
            named.update({p: ["-p", p] for p in ports})
        check_first(_check_test_outputs, junit, plot, save_recording, len(named))
        return _test_many(ctx, named, as_json, junit, quiet)
    check_first(_check_test_outputs, junit, plot, save_recording, len(ports))
    if len(ports) > 1:
        return _test_many(ctx, ports, as_json, junit, quiet)
    port = ports[0]

    def job(reporter, stop):
        from i2scli import session
        from i2scli.loopback import looptest
        from i2scli.session import BusOptions

        if no_probe and fresh_probe:
            raise click.UsageError("use --probe or --no-probe, not both")
        opts = BusOptions(board=board, ibuf=ibuf, timeout=timeout, probe=not no_probe, fresh_probe=fresh_probe)
        sig = looptest.Signal(kind, freq, level, duration)

        def on_ready(cfg, t, r):
            reporter.info(f"testing {choice.bus.describe()} on {agent.describe()}: TX I2S({t.id}) sck={t.sck} "
                          f"ws={t.ws} sd={t.sd} -> RX I2S({r.id}) sck={r.sck} ws={r.ws} sd={r.sd}")

        with session.board(port, baud=baud, warn=reporter.warn, expect={"mode": "loop"}) as agent:
            choice = looptest.choose_format(agent, opts, given, sig, buses["tx"], buses["rx"])
            reporter.info(f"format: {choice.why}")
            return looptest.run(agent, port, choice.bus, opts, buses["tx"], buses["rx"], sig, limits, stop,
                                on_ready, choice)

    run_command(job, quiet=quiet, finish=lambda r, rep: _test_finish(r, rep, as_json, junit, plot, save_recording))


def _check_test_outputs(junit: str | None, plot: str | None, save_recording: str | None, boards: int) -> None:
    """Every file `i2s test` will write can be written (audio.check_writable, as record's and
    duplex's recordings): with several boards, each board's own --plot and --save-recording."""
    from i2scli import audio
    from i2scli.loopback.many_boards import board_path

    per_board = [p for p in (plot, save_recording) if p]
    paths = [junit] if junit else []
    paths += per_board if boards == 1 else [board_path(p, i) for p in per_board for i in range(1, boards + 1)]
    for path in paths:
        audio.check_writable(path)


def _test_finish(result: dict, reporter, as_json: bool, junit: str | None, plot: str | None = None,
                 save_recording: str | None = None) -> None:
    import json

    from i2scli.errors import Exit

    rec = result.pop("_recording", None)
    checks = result["checks"]
    if junit:
        from i2scli.loopback import analysis

        _write_junit({result["board"]: [analysis.Check(**c) for c in checks]}, junit, reporter)
    if as_json:
        click.echo(json.dumps(result, default=str))
    out = click.echo if not as_json else reporter.info
    failed = _print_checks(checks, out)
    code = Exit.CHECK if failed else None
    if save_recording:
        import soundfile

        from i2scli import audio

        try:  # written beside, then renamed over: a write that fails leaves what was there
            with audio.replacing(save_recording) as temp:
                soundfile.write(temp, rec.recorded, result["rate"], format="WAV",
                                subtype="PCM_16" if result["bits"] == 16 else "PCM_32")
        except audio.AudioError as e:
            reporter.error(str(e))
            code = code or Exit.FILE
        except (OSError, RuntimeError, soundfile.LibsndfileError) as e:
            reporter.error(f"cannot write {save_recording}: {getattr(e, 'strerror', None) or e}")
            code = code or Exit.FILE
    if plot:  # after the verdict: a missing matplotlib must not hide it
        from i2scli.loopback import plot as plotting

        try:
            plotting.write(plot, result, rec)
        except plotting.PlotUnavailable as e:
            reporter.error(str(e))
            code = code or Exit.FILE
        except OSError as e:
            reporter.error(f"cannot write {plot}: {e.strerror or e}")
            code = code or Exit.FILE
    if code:
        raise SystemExit(code)


def _write_junit(suites: dict, path: str, reporter) -> None:
    """One JUnit file, a testsuite per board; an unwritable path is exit 1."""
    from i2scli.errors import Exit
    from i2scli.loopback import analysis

    try:
        analysis.junit_xml(suites, path)
    except OSError as e:
        reporter.error(f"cannot write {path}: {e.strerror or e}")
        raise SystemExit(Exit.FILE) from None


def _print_checks(checks: list[dict], out) -> list[str]:
    """One PASS/FAIL line per check and the verdict line; the names of the failed checks."""
    for c in checks:
        out(f"{'PASS' if c['passed'] else 'FAIL'}  {c['message']}")
    failed = [c["name"] for c in checks if not c["passed"]]
    out(f"FAIL: {len(failed)} of {len(checks)} checks failed ({', '.join(failed)})" if failed
        else f"PASS: all {len(checks)} checks passed")
    return failed


def _child_args(ctx, skip: set[str]) -> list[str]:
    """The options given on the command line, again, for an `i2s test` of one board (the
    environment and the defaults reach it by themselves)."""
    from click.core import ParameterSource

    def text(v) -> str:
        if isinstance(v, float):
            t = repr(v)
            return f"{v:.12f}".rstrip("0").rstrip(".") if "e" in t else t
        return str(v)

    args: list[str] = []
    for p in ctx.command.params:
        if not isinstance(p, click.Option) or p.name in skip or not p.expose_value:
            continue  # (--rig/--board-name: _test_many gives each board its own)
        if ctx.get_parameter_source(p.name) is not ParameterSource.COMMANDLINE:
            continue
        v = ctx.params[p.name]
        opt = max(p.opts, key=len)
        if p.is_flag:
            args += [opt] if v else []
        else:
            for x in (v if p.multiple else [v]):
                args += [opt, text(x)]
    return args


def _test_many(ctx, ports: list[str] | dict[str, list[str]], as_json: bool, junit: str | None, quiet: bool) -> None:
    """Every board at once, each by its own `i2s test` process (many_boards.py); then a block per board."""
    import json

    from i2scli.cli.ui import Reporter
    from i2scli.loopback import analysis, many_boards

    reporter = Reporter(quiet=quiet)
    per_board = {"--plot": ctx.params.get("plot"), "--save-recording": ctx.params.get("save_recording")}
    per_board = {k: v for k, v in per_board.items() if v}
    args = _child_args(ctx, {"ports", "as_json", "junit", "quiet", "plot", "save_recording"})
    rig = ctx.meta.get("i2s.rig", {})
    if not isinstance(ports, dict) and rig.get("rig"):  # -p A -p B with one rig board's settings for all
        name = rig.get("board_name")
        args += ["--rig", str(rig["rig"]), *(["--board-name", name[0]] if name else [])]
    reporter.info(f"testing {len(ports)} boards at once: {', '.join(ports)}")
    results, code = many_boards.run(ports, args, per_board)
    if junit:
        suites = {port: ([analysis.Check(**c) for c in r["checks"]] if "checks" in r else
                         [analysis.Check("board.run", r["exit"], 0, False, f"board.run: {r['error']} "
                                                                               f"(exit {r['exit']})")])
                  for port, r in results.items()}
        _write_junit(suites, junit, reporter)
    if as_json:
        click.echo(json.dumps(results, default=str))
    out = click.echo if not as_json else reporter.info
    for port, r in results.items():
        out(f"== {port}" + (f": {r['board']}" if r.get("board") else ""))
        if "checks" in r:
            _print_checks(r["checks"], out)
        else:
            out(f"ERROR (exit {r['exit']}): {r['error']}")
    bad = [p for p, r in results.items() if r["exit"] != 0]
    out(f"FAIL: {len(bad)} of {len(results)} boards failed ({', '.join(bad)})" if bad
        else f"PASS: all {len(results)} boards passed")
    if code:
        raise SystemExit(code)
