"""A board's stream held open: numpy blocks written to TX or read from RX as the board plays or records.

    with i2scli.open("sim://rp2") as board:
        with board.stream("tx", 48000, channels=2) as s:      # blocking writes, as python-sounddevice's
            for block in blocks:                               # int16/int32/float arrays (frames, channels)
                s.write(block)                                 # waits while the board's side is full
        with board.stream("rx", 16000, bits=32) as s:
            data, overflowed = s.read(1600)                    # exactly 1600 frames (fewer: the stream ended)

    def fill(outdata):                                         # callback form: fill `outdata` in place,
        outdata[:] = next_block()                              # raise i2scli.CallbackStop to end
    with board.stream("tx", 48000, callback=fill, blocksize=480):
        done.wait()

The stream runs `session.play` or `session.record` (what `i2s play -` and `i2s record -` run) in a
thread of its own; what the board reports at the end is the stream's `summary` (the `--json` dict).
A writer slower than the board is an underrun the board counts; a reader slower than the board
loses the oldest-but-unread blocks only past `max_backlog` seconds, counted (`overruns`,
`lost_frames`) and said by `read`'s `overflowed`, never silently.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from i2scli import audio

if TYPE_CHECKING:
    from i2scli.device import Device

_IDLE_S = 0.02  # how long the TX source waits for a write before it lets the link be tended


class CallbackStop(Exception):
    """Raised by a stream's callback: this block is the last one."""


class _Backlog:
    """What a reader has not taken yet, bounded: past `limit` bytes new blocks are dropped and
    counted (the names `session.record` reads off a pipe's writer)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.data = bytearray()
        self.cond = threading.Condition()
        self.overruns = 0
        self.lost_frames = 0
        self._dropping = False
        self._unseen_loss = False
        self.ended = False


class _Sink:
    """Where `session.record` writes: into the backlog, or to the callback."""

    format = "array"
    subtype = "array"
    path = None
    reader_gone = False

    def __init__(self, bus: audio.BusFormat, backlog: _Backlog, callback: Callable[[np.ndarray], None] | None):
        self.bus = bus
        self.pipe = backlog
        self.callback = callback
        self.frames = 0

    def write(self, raw: bytes) -> None:
        self.frames += len(raw) // self.bus.frame_bytes
        if self.callback is not None:
            try:
                self.callback(np.frombuffer(raw, self.bus.dtype).reshape(-1, self.bus.channels))
            except CallbackStop:
                self.reader_gone = True  # session.record stops on it, as on a pipe's reader leaving
            return
        b = self.pipe
        with b.cond:
            if len(b.data) + len(raw) > b.limit:
                if not b._dropping:
                    b.overruns += 1
                b._dropping = b._unseen_loss = True
                b.lost_frames += len(raw) // self.bus.frame_bytes
            else:
                b._dropping = False
                b.data += raw
            b.cond.notify_all()

    def sync(self) -> None:
        pass


class Stream:
    """A TX (`mode="tx"`) or RX (`"rx"`) stream on an open `Device`; made by `Device.stream`.
    Use it as a context manager: leaving it ends a TX stream when what was written has played
    (`abort()` ends it at once), and stops an RX stream. `summary` is `--json`'s dict once it ended."""

    def __init__(self, device: Device, mode: str, rate: int, *, channels: int = 2, bits: int = 16,
                 callback: Callable[[np.ndarray], Any] | None = None, blocksize: int | None = None,
                 max_backlog: float = 2.0):
        if mode not in ("tx", "rx"):
            raise ValueError(f"mode must be 'tx' or 'rx', not {mode!r}")
        if bits not in (16, 32) or channels not in (1, 2):
            raise ValueError(f"a stream is 16 or 32 bits, 1 or 2 channels (not {bits}, {channels})")
        self.device = device
        self.mode = mode
        self.bus = audio.BusFormat(int(rate), int(bits), int(channels))
        self.blocksize = int(blocksize or max(1, self.bus.rate // 100))
        self.callback = callback
        self.summary: dict | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=max(2, int(max_backlog * self.bus.rate
                                                                                 // self.blocksize)))
        self._backlog = _Backlog(max(self.bus.frame_bytes, int(max_backlog * self.bus.bytes_per_second)))
        self._thread: threading.Thread | None = None
        self._ended = False

    # -- running --------------------------------------------------------------------------------
    def start(self) -> Stream:
        """Start the stream (the context manager does it)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"i2s-{self.mode}", daemon=True)
            self._thread.start()
        return self

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        from i2scli import session

        d = self.device
        try:
            if self.mode == "tx":
                self.summary = session.play(d.agent, d.port, self._source(), self.bus, d._opts(), stop=self._stop)
            else:
                sink = _Sink(self.bus, self._backlog, self.callback)
                self.summary = session.record(d.agent, d.port, sink, self.bus, d._opts(), session.RecordStop(),
                                              stop=self._stop)
        except BaseException as e:  # handed to the caller's next call
            self._error = e
            self.summary = getattr(e, "partial", None)
        finally:
            d.last = self.summary
            with self._backlog.cond:
                self._backlog.ended = True
                self._backlog.cond.notify_all()

    def _source(self) -> Iterator[bytes]:
        """The blocks session.play sends: written ones, the callback's, or b"" while none waits."""
        if self.callback is not None:
            out = np.zeros((self.blocksize, self.bus.channels), self.bus.dtype)
            while not self._stop.is_set():
                out[:] = 0
                last = False
                try:
                    self.callback(out)
                except CallbackStop:
                    last = True
                yield out.tobytes()
                if last:
                    return
            return
        while True:
            try:
                block = self._queue.get(timeout=_IDLE_S)
            except queue.Empty:
                yield b""  # nothing written yet: the link is tended meanwhile
                continue
            if block is None:
                return
            yield block

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the stream ends by itself (a callback's CallbackStop, an error); True if it did."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.active

    def _raise(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise e

    # -- blocking I/O ---------------------------------------------------------------------------
    def write(self, data: np.ndarray) -> None:
        """Queue `data` (frames[, channels]: int16, int32 or float in [-1, 1)) to be played;
        waits while the stream holds `max_backlog` seconds not yet sent."""
        from i2scli.device import _as_int

        if self.mode != "tx" or self.callback is not None:
            raise RuntimeError("write() is for a TX stream without a callback")
        self.start()
        ints = np.ascontiguousarray(_as_int(data, self.bus.bits), dtype=self.bus.dtype)
        if ints.shape[1] != self.bus.channels:
            raise ValueError(f"the stream has {self.bus.channels} channel(s), the block {ints.shape[1]}")
        raw = ints.tobytes()
        step = self.blocksize * self.bus.frame_bytes
        for i in range(0, len(raw), step):
            while True:
                self._raise()
                if not self.active:
                    raise RuntimeError("the stream has ended")
                try:
                    self._queue.put(raw[i:i + step], timeout=0.1)
                    break
                except queue.Full:
                    continue

    def read(self, frames: int) -> tuple[np.ndarray, bool]:
        """The next `frames` frames as an array (frames, channels) of the bus's ints, and
        whether frames were dropped since the last read because it came late (`overflowed`).
        Fewer frames only when the stream has ended."""
        if self.mode != "rx" or self.callback is not None:
            raise RuntimeError("read() is for an RX stream without a callback")
        self.start()
        want = int(frames) * self.bus.frame_bytes
        b = self._backlog
        raw = bytearray()
        with b.cond:  # taken as it comes: the backlog may be smaller than one read
            while True:
                take = want - len(raw)
                raw += b.data[:take]
                del b.data[:take]
                if len(raw) >= want or b.ended:
                    break
                b.cond.wait(0.1)
            overflowed, b._unseen_loss = b._unseen_loss, False
        if len(raw) < want:
            self._raise()
        return np.frombuffer(bytes(raw), self.bus.dtype).reshape(-1, self.bus.channels), overflowed

    # -- ending ---------------------------------------------------------------------------------
    def close(self) -> dict | None:
        """End the stream: a TX stream once what was written has played, an RX stream now.
        Returns the summary; raises what ended the stream if it failed."""
        if self._ended:
            return self.summary
        self._ended = True
        if self._thread is not None:
            if self.mode == "tx" and self.callback is None:
                while self.active:
                    try:
                        self._queue.put(None, timeout=0.1)
                        break
                    except queue.Full:
                        continue
            else:
                self._stop.set()
            self._thread.join()
        self._raise()
        return self.summary

    def abort(self) -> dict | None:
        """End the stream at once, what was written but not played dropped."""
        self._stop.set()
        return self.close()

    def __enter__(self) -> Stream:
        return self.start()

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            self._stop.set()
        self.close()
