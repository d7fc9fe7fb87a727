"""Options and endings every command shares: ports, baud, the bus options, the summary."""

from __future__ import annotations

import click

from i2scli import targets
from i2scli.units import BUFFER_TIME, DURATION, RING

BOARD_NAMES = targets.names()  # i2scli/targets/: a new board is one module there
LOOP_NAMES = sorted(t.NAME for t in targets.all_targets() if t.LOOP)


def _rig_known(ctx: click.Context) -> set[str]:
    """Every long option name of every command: what a rig file may set."""
    root = ctx.find_root().command
    cmds = root.commands.values() if isinstance(root, click.Group) else [root]
    return {o[2:] for c in cmds for p in c.params for o in p.opts if o.startswith("--")} - {"rig", "board-name"}


def _apply_rig(ctx: click.Context, param: click.Parameter, value):
    """--rig FILE and --board-name NAME (both eager): the rig's options for that board become
    this command's defaults, below the command line and I2S_* variables."""
    meta = ctx.meta.setdefault("i2s.rig", {})
    meta[param.name] = value
    if len(meta) < 2:
        return value
    path, name = meta["rig"], meta["board_name"]
    if isinstance(name, tuple):  # i2s test: several boards, each by its own process (loopback.many_boards)
        if len(name) > 1:
            if path is None:
                raise click.UsageError("--board-name needs a rig file: --rig FILE.toml or I2S_RIG")
            return value
        name = name[0] if name else None
    if path is None:
        if name is not None:
            raise click.UsageError("--board-name needs a rig file: --rig FILE.toml or I2S_RIG")
        return value
    from i2scli import rig

    try:
        board = rig.pick(path, name)
    except ValueError as e:
        from i2scli.cli.advice import words

        raise click.BadParameter(words(e), ctx, param_hint="--rig") from None
    known = _rig_known(ctx)
    here = {o[2:]: p for p in ctx.command.params for o in p.opts if o.startswith("--")}
    defaults = {}
    for key, v in board.options.items():
        if key not in known:
            raise click.BadParameter(f"{path}: boards.{board.name}: no command has an option --{key}", ctx,
                                     param_hint="--rig")
        p = here.get(key)
        if p is not None:
            v = v if isinstance(v, bool) else str(v)
            defaults[p.name] = [v] if getattr(p, "multiple", False) else v
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _rig_options(f, many: bool = False):
    f = click.option("--board-name", envvar="I2S_BOARD_NAME", metavar="NAME", is_eager=True, expose_value=False,
                     callback=_apply_rig, multiple=many,
                     help="The board of the rig file to use (env I2S_BOARD_NAME)"
                          + ("; repeat it to test several boards at once, each with its own settings." if many
                             else "."))(f)
    return click.option("--rig", envvar="I2S_RIG", metavar="FILE.toml", is_eager=True, expose_value=False,
                        callback=_apply_rig, help="Rig file: boards by name with their port and options "
                                                  "(env I2S_RIG).")(f)


def rig_boards(ctx: click.Context) -> dict[str, list[str]] | None:
    """i2s test --board-name A --board-name B: {name: the options that select it}; else None."""
    meta = ctx.meta.get("i2s.rig", {})
    names = meta.get("board_name")
    if not isinstance(names, tuple) or len(names) < 2:
        return None
    if len(set(names)) < len(names):
        raise click.BadParameter("the same board given twice", param_hint="--board-name")
    from i2scli import rig

    try:
        known = rig.load(meta["rig"])
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param_hint="--rig") from None
    for n in names:
        if n not in known:
            raise click.BadParameter(f"{meta['rig']}: no board named {n!r} (it has {', '.join(known)})", ctx,
                                     param_hint="--rig")
    return {n: ["--rig", str(meta["rig"]), "--board-name", n] for n in names}


def _port_option(f):
    return click.option("-p", "--port", envvar="I2S_PORT", default="auto", show_default=True, metavar="PORT",
                        help="Serial port or URL (env I2S_PORT).")(f)


def _parse_baud(ctx, param, value):
    from i2scli.link.baud import parse_setting

    try:
        return parse_setting(value)
    except ValueError as e:
        from i2scli.cli.advice import words

        raise click.BadParameter(words(e).removeprefix("--baud must be "), ctx, param) from None


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
        _rig_options,
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _bus(board, bus_id, sck, ws, sd, mck, ibuf, io, timeout, no_probe, fresh_probe=False, baud=None,
         buffer_time=None, **extra):
    from i2scli.session import BusOptions
    from i2scli.targets.boards import parse_pin

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

    from i2scli.cli.ui import format_summary
    from i2scli.errors import Exit

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
