"""`i2s doctor`: what is wired wrong on the bus."""

from __future__ import annotations

import click

from i2scli.cli import main
from i2scli.cli.common import (
    _bus,
    _bus_options,
)
from i2scli.units import DURATION, RATE


# -- doctor -------------------------------------------------------------------------------------
@main.command()
@click.option("-r", "--rate", type=RATE, default=48000, show_default=True, metavar="HZ")
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
    from i2scli.cli.run import run_command

    def job(reporter, stop):
        from i2scli import audio, session
        from i2scli.loopback import doctor
        bus = audio.BusFormat(rate, 32, 2)
        # a deep ring (85 ms at 48 kHz) rides out a busy host: an overrun would cost frames and bend the rate fit
        opts = _bus(**{**bus_kw, "ibuf": bus_kw.get("ibuf") or (None if bus_kw.get("buffer_time") else doctor.IBUF)})
        out = doctor.ArrivalLog(bus)
        until = session.RecordStop(frames=max(1, int(round(duration * rate))))

        def on_ready(cfg):
            reporter.info(f"listening for {duration:g} s on {session.describe_config(cfg, agent, 'rx')}")

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

        from i2scli.errors import Exit
        from i2scli.loopback import doctor

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
