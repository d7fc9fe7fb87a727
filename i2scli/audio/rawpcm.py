"""Raw PCM (no header): sox's -t raw -r -c -b -e --endian, and aplay's -f."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RawFormat:
    """Headerless PCM: what libsndfile reads it as (`subtype`, `endian`), and `shift` for
    aplay's S24_LE (24 bits in the low three bytes of four: read as PCM_32, shifted up 8)."""

    rate: int
    channels: int
    subtype: str  # PCM_S8, PCM_U8, PCM_16, PCM_24, PCM_32, FLOAT, DOUBLE
    endian: str = "LITTLE"
    shift: int = 0

    @property
    def subtype_name(self) -> str:
        return "PCM_24" if self.shift else self.subtype


#: aplay's -f names: (libsndfile subtype, endianness, shift); and its shorthands
APLAY_FORMATS = {
    "S8": ("PCM_S8", "LITTLE", 0), "U8": ("PCM_U8", "LITTLE", 0),
    "S16_LE": ("PCM_16", "LITTLE", 0), "S16_BE": ("PCM_16", "BIG", 0),
    "S24_LE": ("PCM_32", "LITTLE", 8), "S24_BE": ("PCM_32", "BIG", 8),
    "S24_3LE": ("PCM_24", "LITTLE", 0), "S24_3BE": ("PCM_24", "BIG", 0),
    "S32_LE": ("PCM_32", "LITTLE", 0), "S32_BE": ("PCM_32", "BIG", 0),
    "FLOAT_LE": ("FLOAT", "LITTLE", 0), "FLOAT_BE": ("FLOAT", "BIG", 0),
    "FLOAT64_LE": ("DOUBLE", "LITTLE", 0), "FLOAT64_BE": ("DOUBLE", "BIG", 0),
}
APLAY_SHORTHANDS = {"cd": ("S16_LE", 44100, 2), "cdr": ("S16_BE", 44100, 2), "dat": ("S16_LE", 48000, 2)}
#: sox's -e names (and the short forms sox users write)
SOX_ENCODINGS = {"signed-integer": "signed", "signed": "signed", "unsigned-integer": "unsigned",
                 "unsigned": "unsigned", "floating-point": "float", "float": "float"}


def raw_format(rate: int | None, channels: int | None, bits: int | None, encoding: str | None = None,
               endian: str | None = None, aplay: str | None = None) -> RawFormat:
    """A RawFormat from sox's flags (-r -c -b -e --endian) or aplay's -f (with -r -c, or a
    shorthand: cd, cdr, dat). ValueError (a usage error) saying what is missing or wrong."""
    if aplay is not None:
        if bits is not None or encoding is not None or endian is not None:
            raise ValueError("-f names the sample format: leave out -b, -e and --endian")
        key = aplay if aplay in APLAY_SHORTHANDS else aplay.upper()
        if key in APLAY_SHORTHANDS:
            name, r, c = APLAY_SHORTHANDS[key]
            rate, channels = rate or r, channels or c
            key = name
        if key not in APLAY_FORMATS:
            raise ValueError(f"unknown -f format {aplay!r} (known: {', '.join([*APLAY_FORMATS, *APLAY_SHORTHANDS])})")
        subtype, order, shift = APLAY_FORMATS[key]
    else:
        if bits is None:
            raise ValueError("raw PCM has no header: give its sample size with -b BITS (or -f S16_LE)")
        enc = SOX_ENCODINGS.get((encoding or "signed-integer").lower())
        if enc is None:
            raise ValueError(f"unknown encoding -e {encoding!r} (signed-integer, unsigned-integer or floating-point)")
        table = {"signed": {8: "PCM_S8", 16: "PCM_16", 24: "PCM_24", 32: "PCM_32"},
                 "unsigned": {8: "PCM_U8"}, "float": {32: "FLOAT", 64: "DOUBLE"}}[enc]
        if bits not in table:
            sizes = ", ".join(map(str, table))
            raise ValueError(f"-e {encoding or 'signed-integer'} takes -b {sizes}, not {bits}")
        subtype, order, shift = table[bits], (endian or "little").upper(), 0
    missing = [flag for flag, v in (("-r RATE", rate), ("-c CHANNELS", channels)) if v is None]
    if missing:
        raise ValueError(f"raw PCM has no header: give {' and '.join(missing)}")
    return RawFormat(int(rate), int(channels), subtype, order, shift)
