from i2scli.errors import exit_on_signals

exit_on_signals()  # first thing: a signal while the rest is imported exits 130, quietly

from i2scli.cli import main  # noqa: E402

main()
