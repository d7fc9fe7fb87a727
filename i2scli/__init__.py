"""i2s: play and record audio over the I2S bus of a MicroPython board."""

__version__ = "0.1.0"


def open(port: str = "auto", **options):  # noqa: A001  (as sounddevice users expect: i2scli.open)
    """The board at `port` as an in-process audio device (i2scli.device.Device): play, rec,
    playrec, test and info on numpy arrays over one connection. See i2scli.device."""
    from i2scli.device import open as open_device

    return open_device(port, **options)


_FROM_DEVICE = frozenset({"Device", "LoopResult", "Stream", "CallbackStop", "EXIT_CODES", "NoDevice", "BoardError",
                          "TooFast", "LinkError", "AudioError"})


def __getattr__(name: str):
    """The library's names without importing numpy for `i2s --version`: i2scli.Device, Stream,
    CallbackStop and the error classes, from i2scli.device. (Only these: any other name is left
    to the import system, which asks here before it imports a submodule.)"""
    if name not in _FROM_DEVICE:
        raise AttributeError(f"module 'i2scli' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module("i2scli.device"), name)
