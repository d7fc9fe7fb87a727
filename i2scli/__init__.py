"""i2s: play and record audio over the I2S bus of a MicroPython board."""

__version__ = "0.1.0"


def open(port: str = "auto", **options):  # noqa: A001  (as sounddevice users expect: i2scli.open)
    """The board at `port` as an in-process audio device (i2scli.device.Device): play, rec,
    playrec, test and info on numpy arrays over one connection. See i2scli.device."""
    from i2scli.device import open as open_device

    return open_device(port, **options)


def __getattr__(name: str):
    """The library's names without importing numpy for `i2s --version`: i2scli.Device, Stream,
    CallbackStop and the error classes, from i2scli.device."""
    if name.startswith("__") or name == "device":  # (submodules are found by the import system)
        raise AttributeError(f"module 'i2scli' has no attribute {name!r}")
    import importlib

    device = importlib.import_module("i2scli.device")
    if name in device.__all__:
        return getattr(device, name)
    raise AttributeError(f"module 'i2scli' has no attribute {name!r}")
