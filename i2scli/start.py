"""The `i2s` console script and `python -m i2scli`: signal handlers before anything slow.

A signal that arrives while the rest is imported then ends `i2s` quietly with exit 130
(nothing has been opened yet, so nothing is lost); the commands install their own handlers
(clirun.stop_on_signals) before they open a file or a port.
"""


def run() -> None:
    from i2scli.errors import exit_on_signals

    exit_on_signals()
    from i2scli.cli import main

    main()
