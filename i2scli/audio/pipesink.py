"""A recording written into a pipe as it comes, from a thread of its own."""

from __future__ import annotations

import array
import errno
import fcntl
import os
import select
import stat
import termios
import threading

from i2scli.audio.sndfile import sf_message
from i2scli.errors import AudioError

#: How much a pipe's reader may fall behind before audio is dropped (counted as overruns).
PIPE_BACKLOG_S = 2.0
#: Writes into a pipe of at most this many bytes are atomic: a chunk is all in the host's backlog
#: or all in the pipe, never in both, so the two add up exactly (`queued`).
CHUNK = select.PIPE_BUF


class PipeWriter:
    """Writes a recording into a pipe (a FIFO, a socket, a terminal) from a thread of its own,
    as it comes: the link to the board never waits for the reader. A reader slower than the
    stream fills a bounded backlog (PIPE_BACKLOG_S of audio); past it blocks are dropped and
    counted (`overruns`, `lost_frames`), never lost silently. A reader that goes away
    (EPIPE: `| head -c 1M`) sets `gone`; what follows is not written."""

    def __init__(self, fd: int, bytes_per_second: int):
        import queue

        self.fd = fd
        self.limit = max(1 << 16, int(PIPE_BACKLOG_S * bytes_per_second))
        self.queue: queue.Queue = queue.Queue()
        self.backlog = 0  # bytes queued, not yet written
        self.overruns = 0  # times the backlog was full (a run of dropped blocks counts once)
        self.lost_frames = 0
        self.unwritten_frames = 0  # frames accepted but never written (the reader went away)
        self.gone = False
        self.error: AudioError | None = None
        self._dropping = False
        self._inflight = 0  # frames of the block being written
        self._abandoned = False  # close() gave up waiting for the reader
        self._lock = threading.Lock()
        try:
            self.fifo = stat.S_ISFIFO(os.fstat(fd).st_mode)
        except OSError:
            self.fifo = False
        self._thread = threading.Thread(target=self._run, name="i2s-output", daemon=True)
        self._thread.start()

    def put(self, data: bytes, frames: int) -> bool:
        """Queue `data` (`frames` audio frames); False when it was dropped (counted) or the
        reader is gone."""
        if self.gone:
            return False
        with self._lock:
            if self.backlog + len(data) > self.limit and frames:
                if not self._dropping:
                    self.overruns += 1
                    self._dropping = True
                self.lost_frames += frames
                return False
            self._dropping = False
            self.backlog += len(data)
        self.queue.put((data, frames))
        return True

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            data, frames = item
            self._inflight = frames
            view = memoryview(data)
            if not self.gone:
                try:
                    while view:
                        n = os.write(self.fd, view[:CHUNK])
                        with self._lock:
                            self.backlog -= n
                        view = view[n:]
                except BrokenPipeError:
                    self._reader_went_away()
                except OSError as e:
                    self.error = stdout_error(e)
                    self._reader_went_away()
            with self._lock:
                if self.gone and not self._abandoned:
                    self.unwritten_frames += frames
                self._inflight = 0
                self.backlog -= len(view)

    def queued(self) -> tuple[int, int]:
        """Bytes on their way to the reader: the host's backlog and what sits in the pipe (a
        pipe's or FIFO's write end answers FIONREAD too; another kind of stream counts 0)."""
        with self._lock:
            host = self.backlog
            if not self.fifo or self.gone:
                return host, 0
            n = array.array("i", [0])
            try:
                fcntl.ioctl(self.fd, termios.FIONREAD, n)
            except OSError:
                return host, 0
            return host, n[0]

    def _reader_went_away(self) -> None:
        self.gone = True
        try:  # nothing written later (an exit's flush included) meets the closed pipe
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.fd)
            os.close(devnull)
        except OSError:
            pass

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (waiting at most `timeout` s for the reader), then stop; what a
        reader that stopped reading left in the queue is counted as never written."""
        self.queue.put(None)
        self._thread.join(timeout)
        with self._lock:
            if not self._thread.is_alive():
                return
            # the reader stopped reading: the write under way and what is queued never reach it
            self.gone = self._abandoned = True
            self.unwritten_frames += self._inflight
        import queue

        try:
            while True:
                item = self.queue.get_nowait()
                if item is not None:
                    self.unwritten_frames += item[1]
        except queue.Empty:
            pass


def stdout_error(e: OSError) -> AudioError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        words = "no space left on the device" if e.errno == errno.ENOSPC else "disk quota exceeded"
        return AudioError(f"cannot write to standard output: {words}")
    return AudioError(f"cannot write to standard output: {sf_message(e)}")
