"""Audio files and formats: reading, writing, converting to and from the wire, levels, --fit, the wire coder."""

from __future__ import annotations

import importlib

# Each name's module, imported when the name is first used: `busformat` (numpy-free) serves `ui`,
# `info` and the help text, which must not pay for numpy and soundfile.
_WHERE = {
    "AudioError": "i2scli.errors",
    "BusFormat": "i2scli.audio.busformat",
    "describe_format": "i2scli.audio.busformat",
    "wire_to_array": "i2scli.audio.wire",
    "slot_keeper": "i2scli.audio.wire",
    "to_dbfs": "i2scli.audio.levels",
    "Levels": "i2scli.audio.levels",
    "parse_channels_map": "i2scli.audio.source",
    "Input": "i2scli.audio.source",
    "STREAM_BLOCK_MS": "i2scli.audio.source",
    "STREAM_QUEUE_S": "i2scli.audio.source",
    "SPOOL_SNIFF": "i2scli.audio.spool",
    "SPOOL_MAX": "i2scli.audio.spool",
    "RawFormat": "i2scli.audio.rawpcm",
    "APLAY_FORMATS": "i2scli.audio.rawpcm",
    "APLAY_SHORTHANDS": "i2scli.audio.rawpcm",
    "SOX_ENCODINGS": "i2scli.audio.rawpcm",
    "raw_format": "i2scli.audio.rawpcm",
    "is_stream": "i2scli.audio.read",
    "open_input": "i2scli.audio.read",
    "ConvertStats": "i2scli.audio.convert",
    "play_blocks": "i2scli.audio.convert",
    "tone_blocks": "i2scli.audio.convert",
    "_quantize": "i2scli.audio.convert",
    "OUTPUT_FORMATS": "i2scli.audio.write",
    "OUTPUT_SUBTYPES": "i2scli.audio.write",
    "Output": "i2scli.audio.write",
    "check_output_path": "i2scli.audio.write",
    "check_writable": "i2scli.audio.write",
    "open_output": "i2scli.audio.write",
    "PIPE_BACKLOG_S": "i2scli.audio.pipesink",
    "replacing": "i2scli.audio.atomic",
}

__all__ = [
    "AudioError",
    "BusFormat",
    "ConvertStats",
    "Input",
    "Levels",
    "Output",
    "OUTPUT_FORMATS",
    "check_output_path",
    "check_writable",
    "to_dbfs",
    "open_input",
    "open_output",
    "parse_channels_map",
    "play_blocks",
    "replacing",
    "tone_blocks",
    "wire_to_array",
]


def __getattr__(name: str) -> object:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})

