"""The `i2s` command line: parse, call into the library, print. Nothing else lives here.

A thin command table (as mpremote keeps one): the group is here, each command group in its own
module (streams, testing, doctor, board, sim), the options they share in common."""

from __future__ import annotations

import importlib

import click

from i2scli import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Where each command lives: its module is imported when the command is asked for (its
#: decorators register it on `main`), so `i2s play` does not import the loopback test's limits.
COMMANDS = {"devices": "board", "info": "board", "install": "board", "doctor": "doctor", "sim": "sim",
            "play": "streams", "record": "streams", "duplex": "streams", "test": "testing"}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (click's documented lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            importlib.import_module(f"{__name__}.{COMMANDS[name]}")
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings=CONTEXT)
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

