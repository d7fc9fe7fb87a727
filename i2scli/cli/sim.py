"""`i2s sim`: a virtual board."""

from __future__ import annotations

import click

from i2scli.cli import main
from i2scli.units import DURATION


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
              help="Board to imitate: openmv, stm32, pybd, rp2, esp32, esp32s3, mimxrt, no-i2s, fast, custom; "
                   "rp2-firmware runs the real MicroPython rp2 firmware in an RP2040 emulator.")
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

    if profile == "rp2-firmware":
        from i2scli.cli.sim_firmware import run_firmware_board

        run_firmware_board(click.get_current_context(), tx_capture=tx_capture, rx_source=rx_source,
                           loopback=loopback, events=events, faults=faults,
                           exit_with_stdin=exit_with_stdin)
        return
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
