"""i2scli's top-level names: the library's classes, lazily, without hiding submodules."""

import subprocess
import sys

import i2scli
from i2scli import device


def test_the_library_names_are_the_device_modules():
    assert set(i2scli._FROM_DEVICE) <= set(device.__all__)
    assert i2scli.Stream is device.Stream and i2scli.CallbackStop is device.CallbackStop


def test_a_submodule_imported_first_from_the_package_is_not_shadowed():
    # a fresh interpreter: `from i2scli.link.errors import ...` first, as a test module may
    code = "from i2scli.link.errors import NoDevice; import i2scli; print(i2scli.NoDevice is NoDevice)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr
