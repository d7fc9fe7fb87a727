"""Package discovery, which pyproject.toml cannot say alone.

Every folder under i2scli/ is found and ships (a new subpackage needs no line here, nor an
`__init__.py`: i2scli/sim/runtime/, the virtual board's MicroPython half, has none); the board
agent in firmware/ ships as i2scli.firmware (pyproject.toml maps the folder). pyproject.toml's
`[tool.setuptools] packages` is either a list or a `find` table, never both, and `find` cannot
place firmware/ under i2scli: hence these lines. Everything else is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

NOT_PRODUCT = ["*__pycache__", "*__pycache__.*", "*node_modules", "*node_modules.*"]

setup(packages=[*find_namespace_packages(include=["i2scli", "i2scli.*"], exclude=NOT_PRODUCT), "i2scli.firmware"])
