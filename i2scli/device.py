"""A board as an audio device, in-process: numpy arrays in and out, one connection for many calls.

`play`, `rec` and `playrec` on numpy arrays, on a board the command line would use:

    import numpy as np
    import i2scli

    with i2scli.open("sim://rp2?loopback=0>1") as board:     # any port -p takes; "auto" by default
        board.play(tone, 48000)                                # int16 -> 16-bit bus, int32 -> 32-bit
        y = board.rec(16000, 16000, channels=1, bits=32)       # int32 array, shape (16000, 1)
        y = board.playrec(x, 48000)                            # two buses at once: what RX heard
        result = board.test(rate=16000)                        # the loopback test: result.passed

Arrays convert as files do in `i2s play`: int16 and int32 samples are sent as they are (bit-exact),
floats in [-1, 1) are scaled to the bus's bits (rounded, clipped and counted). Errors are the
command line's own classes (`NoDevice`, `BoardError`, `TooFast`, `LinkError`, `AudioError`), each
with the exit code the command line gives it in `EXIT_CODES`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from i2scli import audio
from i2scli.device_stream import CallbackStop, Stream
from i2scli.errors import AudioError, Exit
from i2scli.link import Agent, BoardError, LinkError, TooFast
from i2scli.link.errors import NoDevice
from i2scli.targets import boardinfo

__all__ = ["Device", "LoopResult", "Stream", "CallbackStop", "open", "EXIT_CODES", "NoDevice", "BoardError",
           "TooFast", "LinkError", "AudioError"]

#: The command line's exit code for each error class (README's table), most specific first.
EXIT_CODES: dict[type[Exception], Exit] = {NoDevice: Exit.NO_DEVICE, TooFast: Exit.BOARD, BoardError: Exit.BOARD,
                                          LinkError: Exit.LINK, AudioError: Exit.FILE}

_BLOCK = 4096  # frames per block handed to the link: the size `i2s play` reads a file in


def exit_code(e: BaseException) -> int | None:
    """The exit code `i2s` would end with for the error `e` (None: not one of its errors)."""
    return next((int(code) for cls, code in EXIT_CODES.items() if isinstance(e, cls)), None)


@dataclass(frozen=True)
class LoopResult:
    """What `i2s test --json` prints, typed: `passed`, `checks` (dicts: name, value, limit,
    passed, message), the format, and everything else in `data`; `failed` lists the lines of
    the checks that failed, `played`/`recorded` the audio itself."""

    passed: bool
    checks: list[dict]
    rate: int
    bits: int
    channels: int
    data: dict = field(repr=False)
    played: np.ndarray = field(repr=False)
    recorded: np.ndarray = field(repr=False)

    @property
    def failed(self) -> list[str]:
        return [c["message"] for c in self.checks if not c["passed"]]


def _as_int(data: np.ndarray, bits: int) -> np.ndarray:
    """`data` (frames[, channels]) as the bus's ints: integer arrays as they are (int16 into a
    32-bit bus left-justified, as a 16-bit file plays there), floats scaled and clipped."""
    x = np.asarray(data)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] not in (1, 2):
        raise ValueError(f"audio must have shape (frames,) or (frames, 1|2), not {x.shape}")
    if x.dtype == np.int16:
        return x if bits == 16 else x.astype(np.int32) << 16
    if x.dtype == np.int32:
        return x if bits == 32 else (x >> 16).astype(np.int16)
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise ValueError("audio holds NaN or inf")
        ints, _ = audio._quantize(x.astype(np.float64), bits, float(1 << (bits - 1)))
        return ints
    raise ValueError(f"audio must be int16, int32 or float, not {x.dtype}")


def _bits_for(data: np.ndarray, bits: int | None) -> int:
    if bits is not None:
        if bits not in (16, 32):
            raise ValueError(f"bits must be 16 or 32, not {bits}")
        return bits
    return 32 if np.asarray(data).dtype == np.int32 else 16


def _pins(given: dict | None) -> dict:
    """A bus's id and pins as looptest takes them: every key, None where the preset decides."""
    from i2scli.targets.boards import parse_pin

    given = dict(given or {})
    unknown = set(given) - {"id", "sck", "ws", "sd", "mck"}
    if unknown:
        raise TypeError(f"unknown option {sorted(unknown)[0]!r} (a bus takes id, sck, ws, sd, mck)")
    return {k: (given.get(k) if k == "id" or not isinstance(given.get(k), str) else parse_pin(given[k]))
            for k in ("id", "sck", "ws", "sd", "mck")}


def _blocks(ints: np.ndarray, bus: audio.BusFormat) -> Iterator[bytes]:
    for i in range(0, len(ints), _BLOCK):
        yield np.ascontiguousarray(ints[i:i + _BLOCK], dtype=bus.dtype).tobytes()


class _ArrayOutput:
    """Where `session.record` writes, kept in memory: what it needs of an `audio.Output`."""

    format = "array"
    subtype = "array"
    path = None
    pipe = None  # no reader to fall behind or go away (audio.Output's, for a pipe)
    reader_gone = False

    def __init__(self, bus: audio.BusFormat):
        self.bus = bus
        self.parts: list[bytes] = []
        self.frames = 0

    def write(self, raw: bytes) -> None:
        self.parts.append(raw)
        self.frames += len(raw) // self.bus.frame_bytes

    def sync(self) -> None:
        pass

    def array(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.parts), self.bus.dtype).reshape(-1, self.bus.channels).copy()


class Device:
    """A board held open: `play`, `rec`, `playrec`, `test` and `info` reuse one connection
    (one handshake, one link probe). Use it as a context manager, or call `close()`."""

    def __init__(self, port: str = "auto", *, board: str | None = None, baud: str | int = "auto",
                 timeout: float = 10.0, probe: bool = True, compress: str = "auto", ibuf: int | None = None,
                 io: str = "blocking", **pins: Any):
        from i2scli.session import BusOptions

        self.options = BusOptions(board=board, ibuf=ibuf, io=io, probe=probe, compress=compress, **_pins(pins))
        self._cm = boardinfo.board(port, timeout=timeout, baud=baud)
        self.agent: Agent = self._cm.__enter__()
        self.port = self.agent.port
        self.last: dict | None = None  # the summary of the last play/rec, as `--json` prints it

    def close(self) -> None:
        """Leave the board at its REPL and close the port."""
        cm, self._cm = self._cm, None
        if cm is not None:
            cm.__exit__(None, None, None)

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _opts(self, **kw):
        import dataclasses

        return dataclasses.replace(self.options, **kw)

    def info(self) -> dict:
        """What `i2s info --json` prints: the board, its agent, its link and the streams that fit."""
        return boardinfo.info(self.agent, self.port, self.options.probe)

    def play(self, data: np.ndarray, rate: int, *, bits: int | None = None, stop: threading.Event | None = None
             ) -> dict:
        """Play `data` (frames[, channels]) at `rate` Hz and return when it has played; the
        summary (`i2s play --json`'s) is returned. `bits`: the bus's sample size (default 16
        for int16 and float audio, 32 for int32)."""
        from i2scli import session

        bits = _bits_for(data, bits)
        ints = _as_int(data, bits)
        bus = audio.BusFormat(int(rate), bits, ints.shape[1])
        self.last = session.play(self.agent, self.port, _blocks(ints, bus), bus,
                                 self._opts(stream_seconds=len(ints) / bus.rate), stop=stop)
        return self.last

    def rec(self, frames: int, rate: int, channels: int = 1, bits: int = 32,
            stop: threading.Event | None = None) -> np.ndarray:
        """Record exactly `frames` frames at `rate` Hz: an int16 (16-bit) or int32 (32-bit)
        array of shape (frames, channels). Stopped early by `stop`, it holds what arrived."""
        from i2scli import session

        bus = audio.BusFormat(int(rate), int(bits), int(channels))
        out = _ArrayOutput(bus)
        self.last = session.record(self.agent, self.port, out, bus, self._opts(stream_seconds=frames / bus.rate),
                                   session.RecordStop(frames=frames), stop=stop)
        return out.array()

    def stream(self, mode: str, rate: int, *, channels: int = 2, bits: int = 16,
               callback: Callable[[np.ndarray], Any] | None = None, blocksize: int | None = None,
               max_backlog: float = 2.0) -> Stream:
        """A stream held open (`device_stream.Stream`): `mode` "tx" takes `write(block)`, "rx"
        gives `read(frames)`; or `callback(block)` is called for each `blocksize` frames (TX:
        fill the array in place; RX: the frames that came), and raises `CallbackStop` to end.

            with board.stream("tx", 48000) as s:
                s.write(block)                          # (frames, 2) int16, as often as needed
        """
        return Stream(self, mode, rate, channels=channels, bits=bits, callback=callback, blocksize=blocksize,
                      max_backlog=max_backlog)

    def playrec(self, data: np.ndarray, rate: int, *, bits: int | None = None, frames: int | None = None,
                tx: dict | None = None, rx: dict | None = None) -> np.ndarray:
        """Play `data` on the TX bus while recording the RX bus, at once (a board with two
        buses, wired TX to RX): what RX heard from the moment the first frame was played, the
        board's buffering taken out, `frames` long (default: as long as `data`). On a wire,
        that is `data` delayed by the wire's latency. `tx`/`rx`: the buses' id and pins when
        the board's two-bus preset is not what is wired."""
        from i2scli.loopback import looptest
        from i2scli.session import _preset, stream_sizes

        bits = _bits_for(data, bits)
        ints = _as_int(data, bits)
        bus = audio.BusFormat(int(rate), bits, ints.shape[1])
        want = len(ints) if frames is None else int(frames)
        opts = self._opts(ibuf=self.options.ibuf or looptest.LOOP_IBUF)  # the loop's fixed ring, as i2s test's
        t, r = looptest.loop_buses(self.agent, opts, _pins(tx), _pins(rx))
        base = stream_sizes(self.agent, opts, "tx", bus, _preset(self.agent, opts))
        ring = base["ibuf"] // bus.frame_bytes
        half, circle = looptest.tx_dma(self.agent, bus, base["ibuf"])
        # silence first: RX starts after TX (tens of ms on some ports), and what TX played
        # before RX ran is never recorded; then as much again past the end
        lead = ring + bus.rate // 5
        extra = 2 * ring + 2 * (half or 0) + bus.rate // 50
        cfg = {k: base[k] for k in ("bits", "format", "rate", "ibuf", "payload", "timeout_ms")}
        cfg.update(frames=lead + want + extra, tx=asdict(t), rx=asdict(r))
        if half:
            cfg["tx_half"] = half
        silence = bytes(bus.frame_bytes)
        played = silence * lead + np.ascontiguousarray(ints, dtype=bus.dtype).tobytes() + silence * (extra + ring)
        got = bytearray()
        self.last = self.agent.loop(cfg, played, got.extend, None)
        n = len(got) // bus.frame_bytes * bus.frame_bytes
        recorded = np.frombuffer(bytes(got[:n]), bus.dtype).reshape(-1, bus.channels)
        board, _ = looptest.board_frames(self.last["sync"], bus.rate, half, circle)
        start = board + lead  # the recorded frame where the first frame of `data` went out on TX
        if start < 0 or start + want > len(recorded):
            raise LinkError(f"the recording ({len(recorded)} frames) does not hold the {want} played frames "
                            f"from frame {start}: the board started RX too late or stopped too soon")
        out = recorded[start:start + want]
        return out.copy()

    def test(self, *, rate: int | None = None, bits: int | None = None, channels: int | None = None,
             signal: str = "sine", freq: float = 997.0, level: float = -6.0, duration: float = 1.2,
             limits: Any = None, tx: dict | None = None, rx: dict | None = None, **limit_values: Any) -> LoopResult:
        """The loopback test `i2s test` runs, with its defaults: a failed check is a result
        (`passed` False, `failed` its lines), not an error. `limits`: an `analysis.Limits`,
        a path to a limits file, or None; keywords such as `min_snr=90` set single limits."""
        import dataclasses

        from i2scli.loopback import analysis, looptest

        if limits is None:
            lim = analysis.Limits.run_defaults()  # what `i2s test` judges by without a limits file
        elif isinstance(limits, analysis.Limits):
            lim = limits
        else:
            lim = analysis.load_limits(limits)
        names = {f.name for f in fields(analysis.Limits)}
        if set(limit_values) - names:
            raise TypeError(f"unknown limit {sorted(set(limit_values) - names)[0]!r}")
        lim = dataclasses.replace(lim, **limit_values)
        sig = looptest.Signal(signal, freq, level, duration)
        opts = self._opts()
        t, r = _pins(tx), _pins(rx)
        choice = looptest.choose_format(self.agent, opts, (rate, bits, channels), sig, t, r)
        result = looptest.run(self.agent, self.port, choice.bus, opts, t, r, sig, lim, None, None, choice)
        rec = result.pop("_recording")
        return LoopResult(passed=result["passed"], checks=result["checks"], rate=result["rate"], bits=result["bits"],
                          channels=result["channels"], data=result, played=rec.played, recorded=rec.recorded)


def open(port: str = "auto", **options: Any) -> Device:  # noqa: A001  (sounddevice-like: i2scli.open)
    """Open the board at `port` (any port `-p` takes): a `Device`. Keywords: `board` (preset),
    `baud`, `timeout`, `probe`, `compress`, `ibuf`, `io`, and the pins `id`, `sck`, `ws`, `sd`, `mck`."""
    return Device(port, **options)
