"""Options and endings every command shares: ports, baud, the bus options, the summary."""

from __future__ import annotations

import click

from i2scli import targets
from i2scli.units import BUFFER_TIME, DURATION, RING

BOARD_NAMES = targets.names()  # i2scli/targets/: a new board is one module there
LOOP_NAMES = sorted(t.NAME for t in targets.all_targets() if t.LOOP)


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
        click.option("--ibuf", type=RING, metavar="BYTES",
                     help="I2S DMA ring size (default: sized by time, see --buffer-time)."),
        click.option("-B", "--buffer-time", type=BUFFER_TIME, metavar="TIME",
                     help="I2S DMA ring as a time of the stream, e.g. 200ms (a bare number is microseconds, as "
                          "aplay's); default: 200 ms or 4x the link's longest stall, at most 500 ms, never "
                          "longer than the stream nor a quarter of the board's free RAM."),
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


def _bus(board, bus_id, sck, ws, sd, mck, ibuf, io, timeout, no_probe, fresh_probe=False, baud=None,
         buffer_time=None, **extra):
    from i2scli.boards import parse_pin
    from i2scli.session import BusOptions

    if no_probe and fresh_probe:
        raise click.UsageError("use --probe or --no-probe, not both")
    if ibuf and buffer_time:
        raise click.UsageError("use --ibuf or --buffer-time, not both")

    return BusOptions(board=board, id=bus_id, sck=parse_pin(sck), ws=parse_pin(ws), sd=parse_pin(sd),
                      mck=parse_pin(mck), ibuf=ibuf, buffer_time=buffer_time, io=io, timeout=timeout,
                      probe=not no_probe,
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
