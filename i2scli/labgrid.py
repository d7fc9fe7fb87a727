"""A labgrid driver: `imports: [i2scli.labgrid]` in the env YAML, then `I2SDriver` on a target
with a SerialPort or NetworkSerialPort. Its calls are i2scli.api.Board's (play, record, test,
info), each returning what `--json` prints.

    targets:
      main:
        resources:
          RemotePlace: {name: rig1}
        drivers:
          I2SDriver: {}
    imports: [i2scli.labgrid]

    def test_audio(target):
        i2s = target.get_driver("I2SDriver")
        target.activate(i2s)
        assert i2s.test(rate=16000, bits=16, channels=1)["passed"]
        with i2s.open() as board:                  # in-process: numpy arrays, one connection
            y = board.rec(1600, 16000, channels=1, bits=16)

Needs the optional extra: pip install 'i2scli[labgrid]'.
"""

from __future__ import annotations

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.step import step

from i2scli.api import Board

__all__ = ["I2SDriver"]


@target_factory.reg_driver
@attr.s(eq=False)
class I2SDriver(Driver):
    """i2s on the target's serial port (the port must not be held by another driver)."""

    bindings = {"port": {"SerialPort", "NetworkSerialPort"}}
    timeout = attr.ib(default=600.0, validator=attr.validators.instance_of(float))

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self.board = None

    def url(self) -> str:
        res = self.port
        if not hasattr(res, "host"):  # a local SerialPort
            return res.port
        from labgrid.util.proxy import proxymanager

        host, port = proxymanager.get_host_and_port(res)
        scheme = "rfc2217" if getattr(res, "protocol", "rfc2217") == "rfc2217" else "socket"
        return f"{scheme}://{host}:{port}"

    def on_activate(self):
        self.board = Board(self.url(), timeout=self.timeout)

    def on_deactivate(self):
        self.board = None

    @Driver.check_active
    def open(self, **options):
        """The board in-process on this target's port: `i2scli.open(...)`, a `Device` (numpy
        arrays, streams, one connection for many calls; docs/python.md). Close it (or use it in a
        `with` block) before the driver's other calls, which open the port themselves."""
        from i2scli.device import open as open_device

        return open_device(self.url(), **options)

    @Driver.check_active
    @step()
    def info(self, **opts) -> dict:
        return self.board.info(**opts)

    @Driver.check_active
    @step(args=["file"])
    def play(self, file=None, **opts) -> dict:
        return self.board.play(file, **opts)

    @Driver.check_active
    @step(args=["file"])
    def record(self, file, **opts) -> dict:
        return self.board.record(file, **opts)

    @Driver.check_active
    @step()
    def test(self, **opts) -> dict:
        return self.board.test(**opts)
