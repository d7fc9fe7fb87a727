"""The wire coder on a stream: DATA payloads coded on the way out, decoded on the way in, and
counted (docs/protocol.md, "Wire compression"). The coder itself is i2scli/audio/wirecode.py."""

from __future__ import annotations

from i2scli.audio import wirecode  # numpy: this module is imported only for a stream that codes


class WireCoding:
    """One stream's coding: its counts, and the frames that did not decode."""

    def __init__(self, bits: int, channels: int):
        self.bits = bits
        self.channels = channels
        self.frames_coded = 0
        self.frames_raw = 0
        self.audio_bytes = 0
        self.wire_bytes = 0
        self.errors = 0  # coded frames that failed to decode: audio lost, as a CRC error

    def encode(self, audio: bytes) -> tuple[bytes, bool]:
        """The payload for `audio`, and whether it needs the link's CRC (raw escapes do; coded
        payloads carry a checksum of the audio they decode to)."""
        payload = wirecode.encode(audio, self.bits, self.channels)
        self._count(payload, len(audio))
        return payload, payload[0] == wirecode.RAW

    def encode_many(self, audio: bytes, payload: int) -> list[tuple[bytes, bool]]:
        """`encode` for each payload-sized piece of `audio`, coded in one vectorised pass."""
        out = []
        for i, coded in enumerate(wirecode.encode_many(audio, payload, self.bits, self.channels)):
            self._count(coded, min(payload, len(audio) - i * payload))
            out.append((coded, coded[0] == wirecode.RAW))
        return out

    def decode(self, payload: bytes) -> bytes | None:
        """The audio of a payload the board coded; None (counted) when it does not decode."""
        try:
            audio = wirecode.decode(payload, self.bits, self.channels)
        except ValueError:
            self.errors += 1
            return None
        self._count(payload, len(audio))
        return audio

    def _count(self, payload: bytes, audio_len: int) -> None:
        if payload[:1] == bytes([wirecode.CODED]):
            self.frames_coded += 1
        else:
            self.frames_raw += 1
        self.audio_bytes += audio_len
        self.wire_bytes += len(payload)

    def summary(self) -> dict:
        return {"ratio": round(self.audio_bytes / self.wire_bytes, 3) if self.wire_bytes else None,
                "frames_compressed": self.frames_coded, "frames_raw": self.frames_raw,
                "audio_bytes": self.audio_bytes, "wire_bytes": self.wire_bytes, "errors": self.errors}
