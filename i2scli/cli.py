"""The `i2s` command line: parse, call into the library, print. Nothing else lives here."""

from __future__ import annotations

import click

from i2scli import __version__
from i2scli.units import DURATION

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="i2s")
def main() -> None:
    """Play and record audio over the I2S bus of a MicroPython board.

    \b
    Examples:
      i2s sim                           start a virtual board, print its port
      i2s sim --profile rp2 --rx-source ramp --tx-capture out.wav
    """


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


def _pin(ctx, param, value):
    if value is None:
        return None
    return int(value) if value.isdigit() else value


@main.command()
@click.option("--profile", default="openmv", show_default=True, metavar="NAME",
              help="Board to imitate: openmv, stm32, rp2, esp32, mimxrt, no-i2s, fast.")
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
@click.option("--exit-with-stdin", is_flag=True, hidden=True)
def sim(profile, tx_capture, rx_source, codec_release, codec_drive, codec_dir_pin, dir_rx_level,
        vcd, events, faults, fs, exit_with_stdin) -> None:
    """Run a virtual board: real MicroPython behind a serial port.

    Prints the board's serial device path as the first line on stdout, then runs until
    SIGINT or SIGTERM, writes its outputs and a one-line summary on stderr. The same board
    is reachable as a port URL, sim://PROFILE?option=value, wherever a port is accepted.
    """
    from i2scli.sim.board import VirtualBoard
    from i2scli.sim.profiles import get_profile
    from i2scli.sim.serve import serve

    try:
        prof = get_profile(profile)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--profile") from None
    board = VirtualBoard(
        prof, tx_capture=tx_capture, rx_source=rx_source, codec_release=codec_release,
        codec_drive=codec_drive, codec_dir_pin=codec_dir_pin, dir_rx_level=dir_rx_level,
        vcd=vcd, events=events, faults=faults, fs=fs,
    )
    serve(board, exit_with_stdin=exit_with_stdin)


if __name__ == "__main__":
    main()
