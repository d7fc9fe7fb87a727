"""Reading a small TOML file the user names (limits, rigs): bounded, one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MAX_BYTES = 64 << 10  # a device or a FIFO that never ends is no settings file


def read_toml(path: str | Path, what: str, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """The table in the TOML file `path`. Raises ValueError with one line naming the file
    (`what` says what it should have been) for a file that is missing, unreadable, too big or
    not TOML; on Python 3.10 it needs the `tomli` package."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ValueError(
                f"cannot read {path}: TOML needs Python 3.11 or the tomli package (pip install tomli)"
            ) from None
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
        if len(raw) > max_bytes:
            raise ValueError(f"{path}: more than {max_bytes >> 10} kB: not a {what}")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, not a {what}") from None
    except PermissionError:
        raise ValueError(f"{path}: permission denied") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not valid TOML: not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None
