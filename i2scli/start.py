"""The `i2s` console script and `python -m i2scli`: signal handlers before anything slow.

A signal that arrives while the rest is imported then ends `i2s` quietly with exit 130
(nothing has been opened yet, so nothing is lost); the commands install their own handlers
(cli.run.stop_on_signals) before they open a file or a port. The handlers go in as this module
is imported, with nothing but the built-in `signal`: importing even i2scli.errors first (a
.pyc to read or compile on a loaded machine) left a window where Ctrl-C printed a traceback.
"""

import signal as _signal


def _on_signal(signum, frame):
    raise SystemExit(130)  # errors.Exit.INTERRUPTED


for _sig in (_signal.SIGTERM, _signal.SIGHUP, _signal.SIGINT):
    if _signal.getsignal(_sig) is not _signal.SIG_IGN:  # a SIGINT ignored at start stays ignored
        _signal.signal(_sig, _on_signal)


def run() -> None:
    from i2scli.errors import exit_on_signals

    exit_on_signals()
    from i2scli.cli import main

    main()
