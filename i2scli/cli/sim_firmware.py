"""`i2s sim --profile rp2-firmware`: the real rp2 firmware in an RP2040 emulator, as a board."""

from __future__ import annotations

import re

import click
from click.core import ParameterSource

from i2scli.errors import Exit


def run_firmware_board(ctx: click.Context, *, tx_capture, rx_source, loopback, events, faults=(),
                       exit_with_stdin: bool) -> None:
    from i2scli.sim.firmware_board import HONOURED, FirmwareBoard, FirmwareUnavailable, check_ready, stalls
    from i2scli.sim.serve import serve

    for name in ctx.params:
        if name not in HONOURED and ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None):
            flag = "--" + name.replace("_", "-")
            raise click.BadParameter(f"the rp2-firmware board cannot honour {flag} (it runs the real firmware: "
                                     f"it takes --tx-capture, --rx-source, --loopback, --events and --fault stall:...)",
                                     param_hint=flag)
    if loopback is not None and not re.fullmatch(r"\s*\d+\s*>\s*\d+\s*", loopback.spec):
        raise click.BadParameter("the rp2-firmware board wires TX SD to RX SD as it is: no analog options "
                                 "(delay, gain, noise, ...)", param_hint="--loopback")
    try:
        stalls(faults)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--fault") from None
    try:
        check_ready()
        board = FirmwareBoard(tx_capture=tx_capture, rx_source=rx_source, loopback=loopback, events=events,
                              faults=faults)
    except (FirmwareUnavailable, ValueError) as e:
        click.echo(f"i2s sim: {e}", err=True)
        ctx.exit(Exit.BOARD)
    serve(board, exit_with_stdin=exit_with_stdin)
