"""i2s: play and record audio over the I2S bus of a MicroPython board."""

__version__ = "0.1.0"
