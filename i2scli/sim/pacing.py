"""The host's clock in the board's units, and byte streams held to a rate (the link's wires)."""

from __future__ import annotations

import threading
import time

# The board's clock trails now_us() by at most this (runtime/_simport.py LAG_MAX): the part of
# a late wake-up of the board process that the host's scheduler caused.
BOARD_LAG_MAX_US = 250_000


def now_us() -> int:
    """The host's clock in the board's units: MicroPython's ticks_us on the unix port is
    CLOCK_MONOTONIC in µs; the board's own clock trails it by up to BOARD_LAG_MAX_US."""
    return time.monotonic_ns() // 1000


class Pacer:
    """Holds a byte stream to `rate` bytes/s (None: no limit), with a 2 ms burst."""

    def __init__(self, rate: int | None, burst: float = 0.002):
        self.rate = rate
        self.burst = burst  # how far behind its schedule the stream may catch up at once
        self._next = time.monotonic()

    def owed(self) -> int:
        """Bytes whose time has come (within the burst window)."""
        if not self.rate:
            return 65536
        late = min(time.monotonic() - self._next, self.burst)
        return max(0, int(late * self.rate))

    def idle(self) -> None:
        """Nothing to send: no credit builds up beyond the usual 2 ms."""
        self._next = max(self._next, time.monotonic() - 0.002)

    def chunk(self) -> int:
        # 1 ms of bytes: a frame's head arrives about as soon as on a real wire
        return 65536 if not self.rate else max(64, self.rate // 1000)

    def wait(self, n: int) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        if self._next < now - self.burst:
            self._next = now - self.burst
        self._next += n / self.rate
        delay = self._next - now
        if delay > 0.0005:  # shorter waits ride on the 2 ms burst (sleep overshoots them)
            time.sleep(delay)


class SharedPacer(Pacer):
    """A Pacer two threads charge at once: one resource both directions use (a native-USB
    board's full-speed bus, docs/sim.md *Both directions at once*). Each caller's bytes take
    their turn on one schedule, so the directions' rates add up to at most `rate`."""

    def __init__(self, rate: int | None, burst: float = 0.002):
        super().__init__(rate, burst)
        self._lock = threading.Lock()

    def wait(self, n: int) -> None:
        if not self.rate:
            return
        with self._lock:  # reserve under the lock, sleep outside it
            now = time.monotonic()
            if self._next < now - self.burst:
                self._next = now - self.burst
            self._next += n / self.rate
            delay = self._next - now
        if delay > 0.0005:
            time.sleep(delay)
