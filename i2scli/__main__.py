from i2scli.start import run

run()
