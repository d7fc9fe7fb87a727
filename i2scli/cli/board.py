"""`i2s devices`, `i2s info`, `i2s install`: the board itself."""

from __future__ import annotations

import click

from i2scli.cli import main
from i2scli.cli.common import (
    _baud_option,
    _port_option,
    _rig_options,
)


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
@_rig_options
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
@_rig_options
@click.option("--remove", is_flag=True, help="Take the agent off the board instead.")
def install(port, remove):
    """Store the agent on the board's filesystem so runs start faster."""
    from i2scli.clirun import run_command

    def job(reporter, stop):
        from i2scli import link, ports

        return {"message": link.install(ports.resolve(port), remove=remove)}

    run_command(job, quiet=False, finish=lambda s, r: click.echo(s["message"], err=True))
