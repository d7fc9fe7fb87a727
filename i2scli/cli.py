"""The `i2s` command line: parse, call into the library, print. Nothing else lives here."""

from __future__ import annotations

import click

from i2scli import __version__, targets
from i2scli.units import DURATION

BOARD_NAMES = targets.names()  # i2scli/targets/: a new board is one module there
LOOP_NAMES = sorted(t.NAME for t in targets.all_targets() if t.LOOP)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="i2s")
def main() -> None:
    """Play and record audio over the I2S bus of a MicroPython board.

    \b
    Examples:
      i2s play song.wav                 play a file on the attached board
      i2s record -r 22050 -b 32 -d 5s out.wav
      i2s info                          what the board is and which streams fit
      i2s sim                           start a virtual board, print its port
      i2s play -p sim://openmv --tone 440 -d 2s
      i2s test --min-snr 90 --junit report.xml   loopback test, TX bus to RX bus

    Ports: -p PORT or I2S_PORT (device path, a0/u0/c0, rfc2217://, socket://, hwgrep://,
    sim://PROFILE); default: the single attached MicroPython board.

    \b
    Exit codes: 0 ok, 1 file, 2 usage, 3 no device, 4 the board cannot do it,
    5 link failure, 6 --strict, 7 a check of i2s test failed (or i2s doctor found a fault),
    130 interrupted (what was recorded is kept).
    """
    from i2scli.errors import exit_on_signals

    exit_on_signals()


# -- shared options ---------------------------------------------------------------------------
def _port_option(f):
    return click.option("-p", "--port", envvar="I2S_PORT", default="auto", show_default=True, metavar="PORT",
                        help="Serial port or URL (env I2S_PORT).")(f)


def _parse_baud(ctx, param, value):
    from i2scli.link.baud import parse_setting

    try:
        return parse_setting(value)
    except ValueError as e:
        raise click.BadParameter(str(e).removeprefix("--baud must be "), ctx, param) from None


def _baud_option(f):
    return click.option("--baud", envvar="I2S_BAUD", default="auto", show_default=True, metavar="auto|off|N",
                        callback=_parse_baud,
                        help="UART links: switch to N baud after the handshake; auto = the fastest the USB-serial "
                             "bridge takes (env I2S_BAUD).")(f)


def _bus_options(f):
    opts = [
        click.option("--board", metavar="NAME", envvar="I2S_BOARD",
                     help=f"Pin preset: {', '.join(BOARD_NAMES)} (default: detected)."),
        click.option("--id", "bus_id", type=int, metavar="N", help="I2S bus id (overrides the preset)."),
        click.option("--sck", metavar="PIN", help="Bit clock pin."),
        click.option("--ws", metavar="PIN", help="Word select pin."),
        click.option("--sd", metavar="PIN", help="Serial data pin."),
        click.option("--mck", metavar="PIN", help="Master clock pin (mimxrt only)."),
        click.option("--ibuf", type=click.IntRange(min=64), metavar="BYTES", help="I2S DMA ring size."),
        click.option("--io", type=click.Choice(["blocking", "irq", "asyncio"]), default="blocking",
                     show_default=True, help="Transfer style on the board."),
        click.option("--timeout", type=DURATION, default="3s", show_default=True, metavar="DUR",
                     help="Board gives up if the host is silent this long."),
        click.option("--no-probe", is_flag=True, help="Skip measuring the link before streaming."),
        click.option("--compress", type=click.Choice(["auto", "on", "off"], case_sensitive=False), default="auto",
                     envvar="I2S_COMPRESS", show_default=True,
                     help="Lossless wire compression: auto = when the link is the limit (env I2S_COMPRESS)."),
        click.option("--probe", "fresh_probe", is_flag=True,
                     help="Measure the link even if a recent measurement of this board is remembered."),
        click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout."),
        click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr."),
        click.option("--strict", is_flag=True, help="Underruns, overruns or clipping fail the run (exit 6)."),
        _port_option,
        _baud_option,
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _bus(board, bus_id, sck, ws, sd, mck, ibuf, io, timeout, no_probe, fresh_probe=False, baud=None, **extra):
    from i2scli.boards import parse_pin
    from i2scli.session import BusOptions

    if no_probe and fresh_probe:
        raise click.UsageError("use --probe or --no-probe, not both")

    return BusOptions(board=board, id=bus_id, sck=parse_pin(sck), ws=parse_pin(ws), sd=parse_pin(sd),
                      mck=parse_pin(mck), ibuf=ibuf, io=io, timeout=timeout, probe=not no_probe,
                      fresh_probe=fresh_probe, **extra)


def _finish(summary: dict, reporter, as_json: bool, strict: bool) -> None:
    import json

    from i2scli.errors import Exit
    from i2scli.ui import format_summary

    if as_json:
        click.echo(json.dumps(summary, default=str))
    else:
        reporter.info(format_summary(summary))
    damaged = {k: summary.get(k) or 0 for k in ("crc_errors", "resyncs", "seq_gaps")}
    if any(damaged.values()):
        # a frame lost or damaged on the link is audio lost: never a silent success (docs/protocol.md)
        reporter.error(f"the link damaged the stream: {damaged['crc_errors']} CRC errors, {damaged['resyncs']} "
                       f"resyncs, {damaged['seq_gaps']} sequence gaps (audio was lost; a cable or hub problem?)")
        raise SystemExit(Exit.LINK)
    if strict and (summary.get("underruns") or summary.get("overruns") or summary.get("clipped")):
        lost = f" ({summary['lost_frames']} frames lost)" if summary.get("lost_frames") else ""
        reporter.error(f"--strict: {summary.get('underruns', 0)} underruns, {summary.get('overruns', 0)} "
                       f"overruns{lost}, {summary.get('clipped', 0)} clipped samples")
        raise SystemExit(Exit.STRICT)
    if summary.get("interrupted"):
        raise SystemExit(Exit.INTERRUPTED)


def _fit_option(f):
    return click.option("--fit", is_flag=True, envvar="I2S_FIT",
                        help="When the link cannot carry the stream even compressed, make it fit with the least "
                             "change: near-lossless (play), else a lower rate or one channel; never changes -r/-c "
                             "you give (env I2S_FIT).")(f)


# -- play ---------------------------------------------------------------------------------------
@main.command()
@click.argument("file", required=False, metavar="FILE")
@click.option("--tone", type=click.FloatRange(min=1), metavar="FREQ", help="Play a sine of FREQ Hz instead of a file.")
@click.option("--level", type=float, default=-6.0, show_default=True, metavar="DBFS", help="Level of --tone.")
@click.option("-r", "--rate", type=click.IntRange(min=1), metavar="HZ",
              help="Bus rate (default: the file's; resampled).")
@click.option("-b", "--bits", type=click.Choice(["16", "32"]), help="Bus sample size (default: 16 for <=16-bit files).")
@click.option("-c", "--channels", type=click.Choice(["1", "2"]), help="Bus channels (default: the file's, at most 2).")
@click.option("--channels-map", metavar="LIST", help="File channels to play, e.g. 0,1 or 2 (0-based).")
@click.option("-d", "--duration", type=DURATION, metavar="DUR", help="Play only this long.")
@click.option("-s", "--samples", type=click.IntRange(min=1), metavar="N", help="Play only N frames.")
@click.option("--gain", type=float, default=0.0, metavar="DB", help="Gain on the host (clipping is counted).")
@click.option("--shift", type=click.IntRange(-31, 31), default=0, metavar="N",
              help="Shift samples on the board with I2S.shift (6 dB a bit).")
@_fit_option
@_bus_options
def play(file, tone, level, rate, bits, channels, channels_map, duration, samples, gain, shift, fit, port, as_json,
         quiet, strict, **bus_kw):
    """Play an audio file (any format libsndfile reads; - for stdin) on the board's I2S TX."""
    from i2scli import audio
    from i2scli.clirun import run_command, run_play

    if (file is None) == (tone is None):
        raise click.UsageError("give a FILE to play or --tone FREQ")
    if duration is not None and samples is not None:
        raise click.UsageError("use -d/--duration or -s/--samples, not both")

    def job(reporter, stop):
        from i2scli import session

        opts = _bus(**bus_kw, shift=shift, fit=fit, rate=rate, channels=int(channels) if channels else None)
        stats = audio.ConvertStats()
        if tone is not None:
            bus = audio.BusFormat(rate or 48000, int(bits or 16), int(channels or 2))
            total = samples or int(round((duration if duration is not None else 5.0) * bus.rate))
            blocks = audio.tone_blocks(tone, bus, frames=total, dbfs=level, stats=stats)
            what = f"{tone:g} Hz tone"
            inp = None
        else:
            cmap = audio.parse_channels_map(channels_map) if channels_map else None
            inp = audio.open_input(file, cmap)
            deep = not inp.integer or (inp.subtype not in ("PCM_16", "PCM_S8", "PCM_U8"))
            bus = audio.BusFormat(rate or inp.rate, int(bits or (32 if deep else 16)),
                                  int(channels or min(inp.channels, 2)))
            max_frames = samples if samples is not None else (
                int(round(duration * inp.rate)) if duration is not None else None)
            total = inp.bus_frames(bus, 0, max_frames)
            blocks = audio.play_blocks(inp, bus, gain_db=gain, max_frames=max_frames, stats=stats)
            what = file if file != "-" else "stdin"
        try:
            with session.board(port, baud=bus_kw["baud"], warn=reporter.warn,
                               expect={"mode": "tx", "io": opts.io}) as agent:
                return run_play(agent, reporter, stop, what, blocks, bus, opts, total, stats)
        finally:
            if inp is not None:
                inp.close()

    run_command(job, quiet=quiet, finish=lambda s, r: _finish(s, r, as_json, strict))


# -- record -------------------------------------------------------------------------------------
@main.command()
@click.argument("file", metavar="FILE")
@click.option("-r", "--rate", type=click.IntRange(min=1), default=16000, show_default=True, metavar="HZ")
@click.option("-b", "--bits", type=click.Choice(["16", "32"]), default="32", show_default=True,
              help="Bus sample size (24-bit microphones send 32-bit slots).")
@click.option("-c", "--channels", type=click.Choice(["1", "2"]), default="1", show_default=True)
@click.option("-d", "--duration", type=DURATION, metavar="DUR", help="Record this long.")
@click.option("-s", "--samples", type=click.IntRange(min=1), metavar="N", help="Record exactly N frames.")
@click.option("--subtype", type=click.Choice(["PCM_16", "PCM_24", "PCM_32"]),
              help="File sample format (default: PCM_16 for 16-bit, PCM_32 for 32-bit; FLAC PCM_24).")
@click.option("--stop-on-silence", type=DURATION, metavar="DUR", help="Stop after this much silence.")
@click.option("--threshold", type=float, default=-50.0, show_default=True, metavar="DBFS",
              help="Below this peak level counts as silence.")
@click.option("--wait-for-sound", is_flag=True, help="Start keeping audio at the first sound over --threshold.")
@click.option("--max-duration", type=DURATION, metavar="DUR",
              help="Safety net for --stop-on-silence / --wait-for-sound.")
@click.option("--slot", type=click.Choice(["left", "right"]),
              help="A mono microphone on this slot: records both slots on the bus, keeps this one (mono file).")
@click.option("--shift", "rx_shift", type=click.IntRange(-31, 31), default=0, metavar="N",
              help="Shift each sample N bits (negative: right, arithmetic), on the host as I2S.shift would; "
                   "-1 undoes an SPH0645's doubled samples.")
@_bus_options
def record(file, rate, bits, channels, duration, samples, subtype, stop_on_silence, threshold, wait_for_sound,
           max_duration, slot, rx_shift, port, as_json, quiet, strict, **bus_kw):
    """Record the board's I2S RX into FILE (.wav, .flac, .rf64, .w64; - for WAV on stdout).

    Stops on -d/-s, Ctrl-C, SIGTERM, SIGHUP, --stop-on-silence, or a lost board; the file
    always holds every sample received, and its header is refreshed about once a second.
    """
    from i2scli import audio
    from i2scli.clirun import run_command, run_record

    if duration is not None and samples is not None:
        raise click.UsageError("use -d/--duration or -s/--samples, not both")
    if file == "-" and as_json:
        raise click.UsageError("--json prints on stdout, which - already uses for audio")
    if slot and channels == "2":
        raise click.UsageError("--slot keeps one slot: a mono file (leave out -c 2)")
    bus = audio.BusFormat(rate, int(bits), 2 if slot else int(channels))
    file_bus = audio.BusFormat(rate, int(bits), 1) if slot else None
    keep = audio.slot_keeper(bus, slot, rx_shift) if slot or rx_shift else None

    def job(reporter, stop):
        from i2scli import session

        audio.check_output_path(file)
        opts = _bus(**bus_kw)
        frames = samples if samples is not None else (int(round(duration * rate)) if duration is not None else None)
        until = session.RecordStop(frames=frames, stop_on_silence=stop_on_silence, threshold_dbfs=threshold,
                                   wait_for_sound=wait_for_sound,
                                   max_frames=int(round(max_duration * rate)) if max_duration else None)
        with session.board(port, baud=bus_kw["baud"], warn=reporter.warn,
                           expect={"mode": "rx", "io": opts.io}) as agent:
            return run_record(agent, reporter, stop, file, bus, opts, until, subtype, file_bus, keep)

    run_command(job, quiet=quiet, finish=lambda s, r: _finish(s, r, as_json, strict))


# -- doctor -------------------------------------------------------------------------------------
@main.command()
@click.option("-r", "--rate", type=click.IntRange(min=1), default=48000, show_default=True, metavar="HZ")
@click.option("-d", "--duration", type=DURATION, default="3s", show_default=True, metavar="DUR",
              help="Record this long (8s or more for a sharper sample rate).")
@_bus_options
def doctor(rate, duration, port, as_json, quiet, strict, **bus_kw):
    """Say what is wired wrong on the RX side of the bus, and measure the board's sample rate.

    Records -d in 32-bit stereo and reports each slot (signal, level, noise floor, audio bits,
    junk low bits, DC offset, stuck bits, clipping), which slot the microphone answers on, the
    sample rate against the host's clock, and the `i2s record` line that suits the microphone.
    Exit 0 when all looks right, 7 when something is wrong. docs/doctor.md.
    """
    from i2scli.clirun import run_command

    def job(reporter, stop):
        from i2scli import audio, doctor, session

        bus = audio.BusFormat(rate, 32, 2)
        # a deep ring (85 ms at 48 kHz) rides out a busy host: an overrun would cost frames and bend the rate fit
        opts = _bus(**{**bus_kw, "ibuf": bus_kw.get("ibuf") or doctor.IBUF})
        out = doctor.ArrivalLog(bus)
        until = session.RecordStop(frames=max(1, int(round(duration * rate))))

        def on_ready(cfg):
            reporter.info(f"listening for {duration:g} s on {session.describe_config(cfg, agent)}")

        with session.board(port, baud=bus_kw["baud"], warn=reporter.warn,
                           expect={"mode": "rx", "io": "blocking"}) as agent:
            timed = doctor.TimedAgent(agent, bus.frame_bytes)
            summary = session.record(timed, agent.port, out, bus, opts, until, stop=stop,
                                     watch=session.Watch(levels=audio.Levels(bus)), on_ready=on_ready)
        fit = doctor.fit_rate(timed.times, timed.counts, rate)
        report = doctor.diagnose(out.samples(), rate, fit)
        report["summary"] = {k: summary.get(k) for k in ("frames", "seconds", "rate", "underruns", "overruns",
                                                         "lost_frames", "crc_errors", "resyncs", "seq_gaps",
                                                         "interrupted", "settings")}
        if summary.get("overruns"):
            report["advice"].insert(0, f"The board lost {summary.get('lost_frames') or 0} frames to "
                                       f"{summary['overruns']} RX overruns (the host or the link was too slow): the "
                                       f"sample rate measured is less sure than it says; a bigger --ibuf helps.")
        report["rx"]["rate_points"] = fit["rate_points"]
        report["rx"]["rate_span_s"] = fit["rate_span_s"]
        return report

    def finish(report, reporter):
        import json

        from i2scli import doctor
        from i2scli.errors import Exit

        if as_json:
            click.echo(json.dumps(report, default=str))
        else:
            for line in doctor.format_report(report, rate):
                click.echo(line)
        s = report["summary"]
        damaged = {k: s.get(k) or 0 for k in ("crc_errors", "resyncs", "seq_gaps")}
        if any(damaged.values()):
            reporter.error(f"the link damaged the stream: {damaged['crc_errors']} CRC errors, {damaged['resyncs']} "
                           f"resyncs, {damaged['seq_gaps']} sequence gaps: the diagnosis is not to be trusted")
            raise SystemExit(Exit.LINK)
        if s.get("interrupted"):
            raise SystemExit(Exit.INTERRUPTED)
        if not report["ok"]:
            raise SystemExit(Exit.CHECK)

    run_command(job, quiet=quiet, finish=finish)


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


@main.command("test")
@click.option("--signal", "kind", type=click.Choice(["sine", "multitone", "sweep"]), default="sine",
              show_default=True, help="Test signal (the stimulus after the alignment marker).")
@click.option("--freq", type=click.FloatRange(min=1), default=997.0, show_default=True, metavar="HZ",
              help="Frequency of the sine.")
@click.option("--level", type=click.FloatRange(max=0), default=-6.0, show_default=True, metavar="DBFS",
              help="Level of the stimulus (per tone for multitone).")
@click.option("-d", "--duration", type=DURATION, default="1.2s", show_default=True, metavar="DUR",
              help="Length of the stimulus.")
@click.option("-r", "--rate", type=click.IntRange(min=1), metavar="HZ",
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
@click.option("--ibuf", type=click.IntRange(min=64), metavar="BYTES", help="I2S DMA ring size of each bus.")
@click.option("--timeout", type=DURATION, default="3s", show_default=True, metavar="DUR",
              help="Board gives up if the host is silent this long.")
@click.option("--no-probe", is_flag=True, help="Skip measuring the link before streaming.")
@click.option("--probe", "fresh_probe", is_flag=True, help="Measure the link even if remembered.")
@click.option("--limits", "limits_file", type=click.Path(), metavar="FILE.toml",
              help="Limits from a TOML file (options below override it).")
@click.option("--freq-tolerance", type=float, callback=_nonneg, metavar="FRACTION",
              help="Largest relative frequency error (default 0.005 = 0.5 %).")
@click.option("--min-snr", type=float, metavar="DB")
@click.option("--max-thd-n", type=float, metavar="DB", help="THD+N below the fundamental, e.g. -60.")
@click.option("--max-latency", type=DURATION, metavar="DUR", help="Path latency, board buffering taken out.")
@click.option("--max-glitches", type=int, callback=_nonneg, metavar="N", help="Default 0.")
@click.option("--min-level", type=float, metavar="DBFS")
@click.option("--max-level", type=float, metavar="DBFS")
@click.option("--min-window-snr", type=float, metavar="DB", help="Least SNR of any 20 ms window.")
@click.option("--ignore-start", type=DURATION, callback=_nonneg, metavar="DUR",
              help="Start of the stimulus judged apart, by the start check (default 30ms).")
@click.option("--max-start-glitches", type=int, callback=_nonneg, metavar="N",
              help="Glitches allowed in that start (default: reported, not judged).")
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

    from i2scli import analysis
    from i2scli.boards import parse_pin
    from i2scli.clirun import check_first, run_command

    top = rate or 48000  # the highest rate i2s test chooses (loopfit.RATES)
    if freq >= top / 2 and kind == "sine":
        raise click.BadParameter(f"{freq:g} Hz is not below the Nyquist frequency of {top} Hz ({top / 2:g} Hz)"
                                 + ("" if rate else ", the highest rate i2s test chooses"), param_hint="--freq")
    names = ("freq_tolerance", "min_snr", "max_thd_n", "max_latency", "max_glitches", "min_level", "max_level",
             "min_window_snr", "ignore_start", "max_start_glitches")
    given = {k: kw.pop(k) for k in names}
    # the files first, before any board is touched: a limits file that is missing or wrong is a
    # usage error (exit 2), an output that cannot be written a file error (exit 1); one line each
    limits = (check_first(analysis.load_limits, limits_file) if limits_file
              else analysis.Limits(freq_tolerance=0.005, max_glitches=0))
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
    check_first(_check_test_outputs, junit, plot, save_recording, len(ports))
    if len(ports) > 1:
        return _test_many(ctx, ports, as_json, junit, quiet)
    port = ports[0]

    def job(reporter, stop):
        from i2scli import looptest, session
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
    from i2scli.multitest import board_path

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
        from i2scli import analysis

        _write_junit({result["board"]: [analysis.Check(**c) for c in checks]}, junit, reporter)
    if as_json:
        click.echo(json.dumps(result, default=str))
    out = click.echo if not as_json else reporter.info
    failed = _print_checks(checks, out)
    code = Exit.CHECK if failed else None
    if save_recording:
        import soundfile

        try:
            soundfile.write(save_recording, rec.recorded, result["rate"],
                            subtype="PCM_16" if result["bits"] == 16 else "PCM_32")
        except (OSError, RuntimeError, soundfile.LibsndfileError) as e:
            reporter.error(f"cannot write {save_recording}: {getattr(e, 'strerror', None) or e}")
            code = code or Exit.FILE
    if plot:  # after the verdict: a missing matplotlib must not hide it
        from i2scli import plot as plotting

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
    from i2scli import analysis
    from i2scli.errors import Exit

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
        if not isinstance(p, click.Option) or p.name in skip:
            continue
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


def _test_many(ctx, ports: list[str], as_json: bool, junit: str | None, quiet: bool) -> None:
    """Every board at once, each by its own `i2s test` process (multitest.py); then a block per board."""
    import json

    from i2scli import analysis, multitest
    from i2scli.ui import Reporter

    reporter = Reporter(quiet=quiet)
    per_board = {"--plot": ctx.params.get("plot"), "--save-recording": ctx.params.get("save_recording")}
    per_board = {k: v for k, v in per_board.items() if v}
    args = _child_args(ctx, {"ports", "as_json", "junit", "quiet", "plot", "save_recording"})
    reporter.info(f"testing {len(ports)} boards at once: {', '.join(ports)}")
    results, code = multitest.run(ports, args, per_board)
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


# -- duplex -------------------------------------------------------------------------------------
@main.command()
@click.argument("play_file", required=False, metavar="[PLAY_FILE]")
@click.option("-o", "--output", "rec_file", required=True, metavar="REC_FILE",
              help="Recording file; with --cycles, {n} in the name is the cycle number (take-{n}.wav).")
@click.option("--order", type=click.Choice(["record-play", "play-record"]), default="record-play", show_default=True)
@click.option("-r", "--rate", type=click.IntRange(min=1), metavar="HZ",
              help="Bus rate (default: the file's, else 16000).")
@click.option("-b", "--bits", type=click.Choice(["16", "32"]), default="32", show_default=True,
              help="32 keeps the bit clock at one speed across the switch.")
@click.option("-c", "--channels", type=click.Choice(["1", "2"]), help="Bus channels (default: the file's, else 1).")
@click.option("-d", "--duration", type=DURATION, metavar="DUR", help="Recording length.")
@click.option("--stop-on-silence", type=DURATION, metavar="DUR", help="End the recording after this much silence.")
@click.option("--threshold", type=float, default=-50.0, show_default=True, metavar="DBFS")
@click.option("--max-duration", type=DURATION, metavar="DUR", help="Safety net for --stop-on-silence.")
@click.option("--cycles", type=click.IntRange(min=1), default=1, show_default=True, help="Repeat record/play N times.")
@click.option("--switch-delay", type=DURATION, default="1ms", show_default=True, metavar="DUR",
              help="Wait between releasing SD and driving it from the other side.")
@click.option("--dir-pin", metavar="PIN", help="Direction pin telling the codec who drives SD (default: preset's).")
@click.option("--dir-rx-level", type=click.IntRange(0, 1), default=0, show_default=True,
              help="DIR level while the codec drives SD (recording).")
@click.option("--sd-tx", metavar="PIN", help="TX data pad when two pads are tied to one SD line.")
@click.option("--sd-rx", metavar="PIN", help="RX data pad when two pads are tied to one SD line.")
@click.option("--lead-in", type=DURATION, default="5ms", show_default=True, metavar="DUR",
              help="Silence before the TX audio.")
@click.option("--rx-discard", type=DURATION, default="2ms", show_default=True, metavar="DUR",
              help="Frames thrown away after RX starts.")
@click.option("--max-clock-gap", type=DURATION, default="10ms", show_default=True, metavar="DUR",
              help="Warn (fail under --strict) when the bit clock stops longer at a switch.")
@click.option("--timeline", "timeline_vcd", metavar="FILE.vcd", type=click.Path(dir_okay=False),
              help="Write the switch timeline as a VCD trace.")
@_fit_option
@_bus_options
def duplex(play_file, rec_file, order, rate, bits, channels, duration, stop_on_silence, threshold, max_duration,
           cycles, switch_delay, dir_pin, dir_rx_level, sd_tx, sd_rx, lead_in, rx_discard, max_clock_gap,
           timeline_vcd, fit, port, as_json, quiet, strict, **bus_kw):
    """Half-duplex on one shared SD line: record, switch, play (or play, then record).

    Without PLAY_FILE the recording is played back (echo test). The switch runs on the
    board: release SD, wait --switch-delay, drive it from the other side.
    """
    from i2scli import audio
    from i2scli.boards import parse_pin
    from i2scli.clirun import run_command, run_duplex

    if duration is None and stop_on_silence is None:
        raise click.UsageError("give the recording length with -d DURATION (or --stop-on-silence DUR)")
    if play_file is None and order == "play-record":
        raise click.UsageError("echo mode (no PLAY_FILE) needs --order record-play")
    if play_file is None and fit:
        raise click.UsageError("--fit fits PLAY_FILE to the link: echo mode (no PLAY_FILE) has none")
    if cycles > 1 and "{n}" not in rec_file:
        raise click.UsageError("with --cycles, put {n} in the -o name (e.g. -o take-{n}.wav)")

    def job(reporter, stop):
        from i2scli import session
        from i2scli.clirun import timeline_path

        for n in range(1, cycles + 1):  # every file it will write, before the board is touched
            audio.check_output_path(rec_file.replace("{n}", str(n)))
            if timeline_vcd:
                audio.check_writable(timeline_path(timeline_vcd, n, cycles))
        opts = _bus(**bus_kw, fit=fit, rate=rate, channels=int(channels) if channels else None)
        inp = audio.open_input(play_file) if play_file else None
        try:
            bus = audio.BusFormat(rate or (inp.rate if inp else 16000), int(bits),
                                  int(channels or (min(inp.channels, 2) if inp else 1)))
        finally:
            if inp is not None:
                inp.close()
        if bus.bits == 16:
            reporter.warn("with -b 16 the bit clock changes speed at the switch (RX clocks 64 bits a frame, "
                          "TX 32): use -b 32")
        dx = session.DuplexOptions(order=order, switch_delay=switch_delay, dir_pin=parse_pin(dir_pin),
                                   dir_rx_level=dir_rx_level, sd_tx=parse_pin(sd_tx), sd_rx=parse_pin(sd_rx),
                                   lead_in=lead_in, rx_discard=rx_discard, max_clock_gap=max_clock_gap)
        until = session.RecordStop(frames=int(round(duration * bus.rate)) if duration else None,
                                   stop_on_silence=stop_on_silence, threshold_dbfs=threshold,
                                   max_frames=int(round(max_duration * bus.rate)) if max_duration else None)
        with session.board(port, baud=bus_kw["baud"], warn=reporter.warn, expect={"mode": "duplex"}) as agent:
            return run_duplex(agent, reporter, stop, play_file, rec_file, bus, opts, dx, until, cycles,
                              timeline_vcd)

    def finish(summary, reporter):
        if summary.get("gap_exceeded"):
            reporter.warn(f"the bit clock stopped for {max(summary['clock_gaps_us']) / 1000:.2f} ms at a switch, "
                          f"more than --max-clock-gap {max_clock_gap * 1000:g} ms")
            if strict:
                _finish(summary, reporter, as_json, False)
                from i2scli.errors import Exit

                raise SystemExit(Exit.STRICT)
        _finish(summary, reporter, as_json, strict)

    run_command(job, quiet=quiet, finish=finish)


# -- devices, info, install ---------------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON on stdout.")
def devices(as_json):
    """List serial ports, marking those that look like MicroPython boards."""
    import json

    from i2scli.ports import device_dicts

    found = device_dicts()
    if as_json:
        click.echo(json.dumps(found))
        return
    if not found:
        click.echo("no serial ports found (a virtual board: i2s sim)", err=True)
    for d in found:
        mark = "*" if d["micropython"] else " "
        click.echo(f"{mark} {d['path']}  {d['vid_pid'] or '-':9}  {d['serial_number'] or '-':16}  {d['description']}")


@main.command()
@_port_option
@_baud_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON on stdout.")
@click.option("--no-probe", is_flag=True, help="Skip measuring the link.")
def info(port, baud, as_json, no_probe):
    """Show the board: identity, machine.I2S, memory, agent, link rate and which streams fit."""
    from i2scli.clirun import run_command

    def job(reporter, stop):
        from i2scli import boardinfo
        from i2scli.link import BoardError

        with boardinfo.board(port, baud=baud, warn=reporter.warn) as agent:
            summary = boardinfo.info(agent, agent.port, probe=not no_probe)
            try:
                agent.require_i2s()
            except BoardError as e:
                summary["error"] = str(e)
            return summary

    def show(summary, reporter):
        import json

        if as_json:
            click.echo(json.dumps(summary))
        else:
            from i2scli.ui import format_info

            click.echo(format_info(summary))
        if summary.get("error"):  # shown, but the board cannot do I2S: exit 4 like play/record
            from i2scli.errors import Exit

            reporter.error(summary["error"])
            raise SystemExit(Exit.BOARD)

    run_command(job, quiet=False, finish=show)


@main.command()
@_port_option
@click.option("--remove", is_flag=True, help="Take the agent off the board instead.")
def install(port, remove):
    """Store the agent on the board's filesystem so runs start faster."""
    from i2scli.clirun import run_command

    def job(reporter, stop):
        from i2scli import link, ports

        return {"message": link.install(ports.resolve(port), remove=remove)}

    run_command(job, quiet=False, finish=lambda s, r: click.echo(s["message"], err=True))


def _faults(ctx, param, values):
    from i2scli.sim.faults import parse_fault

    try:
        return [parse_fault(v) for v in values]
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def _source(ctx, param, value):
    from i2scli.sim.wire import parse_source

    try:
        return parse_source(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def _loopback(ctx, param, value):
    from i2scli.sim.loopback import parse_loopback

    try:
        return parse_loopback(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def _pin(ctx, param, value):
    if value is None:
        return None
    return int(value) if value.isdigit() else value


@main.command()
@click.option("--profile", default="openmv", show_default=True, metavar="NAME",
              help="Board to imitate: openmv, stm32, rp2, esp32, esp32s3, mimxrt, no-i2s, fast, custom.")
@click.option("--bridge", metavar="NAME",
              help="USB-UART bridge of a UART-REPL board (esp32): cp2102 (default), cp2102n, "
                   "ch340, ft232r.")
@click.option("--native", type=click.BOOL, default=True, show_default=True, metavar="yes|no",
              help="The firmware runs viper/native code (no: like a build without a native emitter).")
@click.option("--tx-capture", metavar="FILE.wav", type=click.Path(dir_okay=False),
              help="Write TX samples as they stand on SD (stereo slots, bus rate).")
@click.option("--rx-source", default="silence", show_default=True, metavar="SPEC",
              callback=_source, help="What RX reads: an audio file, sine:FREQ[:DBFS], silence or ramp.")
@click.option("--codec-release", type=DURATION, default="0", show_default=True, metavar="DUR",
              help="Codec stops driving SD this long after DIR leaves the receive level.")
@click.option("--codec-drive", type=DURATION, default="0", show_default=True, metavar="DUR",
              help="Codec starts driving SD this long after DIR reaches the receive level.")
@click.option("--codec-dir-pin", metavar="PIN", callback=_pin,
              help="The codec's DIR pin (default: the profile's; 'none' for no DIR).")
@click.option("--dir-rx-level", type=click.IntRange(0, 1), default=0, show_default=True,
              help="DIR level at which the codec drives SD.")
@click.option("--vcd", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write a VCD trace of the bus (BCLK, WS rate, DIR, SD driver, conflicts).")
@click.option("--events", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write every board and bus event as JSON lines.")
@click.option("--fault", "faults", multiple=True, metavar="SPEC", callback=_faults,
              help="Inject a fault, e.g. drop:offset=5000, stall:at=2s,for=1s, unplug:at=3s, "
                   "reboot:offset=9000 (repeatable).")
@click.option("--fs", metavar="DIR", type=click.Path(file_okay=False),
              help="Keep the board's filesystem in DIR (default: a fresh one per run).")
@click.option("--loopback", metavar="SPEC", callback=_loopback,
              help="Wire TX of one I2S bus to RX of another through an analog path, e.g. "
                   "'0>1,delay=1ms,gain=-3,noise=-80' (options: delay, gain, noise, thd, hum, drop, "
                   "swap, invert, seed).")
@click.option("--clock-ppm", type=click.IntRange(-50_000, 50_000), default=0, show_default=True, metavar="N",
              help="The board's I2S clock runs N ppm fast (negative: slow) against real time.")
@click.option("--sim-stats", type=click.BOOL, default=True, show_default=True, metavar="yes|no",
              help="Board code finds I2S._sim_stats(), the simulator's clock report (no: as on a real "
                   "board, e.g. to test i2s test's latency without it).")
@click.option("--exit-with-stdin", is_flag=True, hidden=True)
def sim(profile, bridge, native, tx_capture, rx_source, codec_release, codec_drive, codec_dir_pin,
        dir_rx_level, vcd, events, faults, fs, loopback, clock_ppm, sim_stats, exit_with_stdin) -> None:
    """Run a virtual board: real MicroPython behind a serial port.

    Prints the board's serial device path as the first line on stdout, then runs until
    SIGINT or SIGTERM, writes its outputs and a one-line summary on stderr. The same board
    is reachable as a port URL, sim://PROFILE?option=value, wherever a port is accepted.
    """
    import os

    from i2scli.sim.board import VirtualBoard, codec_dir_pin_id
    from i2scli.sim.profiles import get_profile
    from i2scli.sim.serve import serve

    try:
        prof = get_profile(profile)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--profile") from None
    if not native:
        import dataclasses

        prof = dataclasses.replace(prof, native=False)
    try:
        from i2scli.sim.profiles import get_bridge

        if bridge is not None and not prof.link.uart:
            raise ValueError(f"board profile {prof.name!r} has native USB: no USB-UART bridge")
        if bridge is not None:
            get_bridge(bridge)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--bridge") from None
    try:
        codec_dir_pin_id(prof, codec_dir_pin)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--codec-dir-pin") from None
    if loopback is not None:
        try:
            loopback.check_profile(prof)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--loopback") from None
    board = VirtualBoard(
        prof, tx_capture=tx_capture, rx_source=rx_source, codec_release=codec_release,
        codec_drive=codec_drive, codec_dir_pin=codec_dir_pin, dir_rx_level=dir_rx_level,
        vcd=vcd, events=events, faults=faults, bridge=bridge, loopback=loopback, clock_ppm=clock_ppm,
        sim_stats=sim_stats,
        fs=os.path.abspath(fs) if fs else None,  # the interpreter runs inside it: relative would not resolve
    )
    serve(board, exit_with_stdin=exit_with_stdin)


if __name__ == "__main__":
    main()
