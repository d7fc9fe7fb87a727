"""`i2s doctor`: what is wired wrong on the bus."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from i2scli.cli import main
from i2scli.cli.common import (
    _bus,
    _bus_options,
)
from i2scli.units import DURATION, RATE

if TYPE_CHECKING:  # numpy comes with the doctor: only the command itself imports it
    from i2scli.loopback.doctor import RecordSettings


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
        report = in_words(doctor.diagnose(out.samples(), rate, fit))
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

        if as_json:
            click.echo(json.dumps(report, default=str))
        else:
            for line in format_report(report, rate):
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


# -- the report in the command line's words ----------------------------------------------------------
_FLAGS = {"slot": "--slot {}", "shift": "--shift {}", "subtype": "--subtype {}", "sd": "--sd"}


def _flag(kind: str, value: object) -> str:
    return _FLAGS[kind].format(value)


def record_line(r: RecordSettings) -> str:
    """The `i2s record` line that records with `r`."""
    parts = ["i2s record", f"-r {r.rate}", f"-b {r.bits}", f"-c {r.channels}"]
    parts += [_flag(kind, value) for kind, value in (("slot", r.slot), ("shift", r.shift), ("subtype", r.subtype))
              if value]
    return " ".join([*parts, "-d 10s out.wav"])


def in_words(report: dict) -> dict:
    """The doctor's report as `i2s doctor --json` prints it: its findings and the recording that
    suits the microphone said with the flags that ask for them."""
    line = record_line(report["record"]) if report["record"] else None
    advice = [f.say(_flag) for f in report["findings"]]
    if line:
        advice.append(f"Record this microphone with: {line}")
    return {"rx": report["rx"], "record": line, "ok": report["ok"], "advice": advice}


def format_report(rep: dict, rate: int) -> list[str]:
    """The report as lines a person reads: a line per slot, the rate, then the advice."""
    lines = []
    for k, r in rep["rx"]["slots"].items():
        if r["state"] == "signal":
            bits = f"{r['significant_bits']} audio bits"
            if r["junk_low_bits"]:
                bits += f" + {r['junk_low_bits']} junk"
            lines.append(f"{k:5}: signal, level {r['level_dbfs']} dBFS, noise floor {r['noise_floor_dbfs']} dBFS, "
                         f"{bits}, DC {r['dc_dbfs']} dBFS, {r['clipped']} clipped")
        elif r["state"] == "constant":
            lines.append(f"{k:5}: constant {r['constant_value'] & 0xFFFFFFFF:#010x}")
        else:
            lines.append(f"{k:5}: {r['state']}")
    rx = rep["rx"]
    if rx["rate_ppm"] is None:
        lines.append("rate : not measured (too short a run: -d 8s measures it to tens of ppm)")
    else:
        lines.append(f"rate : {rx['rate_hz']} Hz, {rx['rate_ppm']:+.1f} ± {rx['rate_ppm_uncertainty']:.1f} ppm "
                     f"off {rate} Hz (against the host's clock)")
    lines += rep["advice"]
    lines.append("OK: the microphone looks right" if rep["ok"] else "PROBLEM: see above")
    return lines
