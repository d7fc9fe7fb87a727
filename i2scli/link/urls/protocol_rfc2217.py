"""rfc2217:// as pyserial speaks it, with memory bounded whatever the endpoint sends.

pyserial's reader thread puts every byte from the network into an unbounded queue, and keeps a
telnet subnegotiation until its end marker however long it grows: an endpoint that floods,
faster than the host reads, grows the host without limit. Here the queue holds at most
QUEUE_MAX bytes (the reader thread then waits, and TCP holds the sender back), and a
subnegotiation longer than SUBNEG_MAX ends the connection (the next read fails: a lost link).
"""

from __future__ import annotations

import queue

from serial import rfc2217

QUEUE_MAX = 1 << 20  # bytes waiting for the host to read them (a deque slot each: ~9 MB)
SUBNEG_MAX = 4096  # a real one (a baud rate, modem lines) is a few bytes
IAC, SB, SE = 0xFF, 0xFA, 0xF0


class _BoundedQueue(queue.Queue):
    """pyserial's read queue (one byte an item), of bounded size: the reader thread waits for
    room, and gives up waiting once the port is closed."""

    def __init__(self, owner: Serial):
        super().__init__(QUEUE_MAX)
        self._owner = owner

    def put(self, item, block=True, timeout=None):
        while True:
            try:
                return super().put(item, True, 0.1)
            except queue.Full:
                if not self._owner.is_open:
                    return None


class _GuardedSocket:
    """The connection's socket, watching the telnet stream for an endless subnegotiation."""

    def __init__(self, sock):
        self._sock = sock
        self._iac = False  # the last byte was IAC
        self._sub = -1  # bytes inside the current subnegotiation (-1: not in one)

    def recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        if self._sub < 0 and not self._iac and IAC not in data:
            return data
        for b in data:
            if self._iac:
                self._iac = False
                if b == SB:
                    self._sub = 0
                elif b == SE:
                    self._sub = -1
            elif b == IAC:
                self._iac = True
            if self._sub >= 0:
                self._sub += 1
                if self._sub > SUBNEG_MAX:
                    return b""  # pyserial's reader takes it as the connection lost
        return data

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class Serial(rfc2217.Serial):
    @property
    def _read_buffer(self):
        return self.__dict__.get("_bounded_queue")

    @_read_buffer.setter
    def _read_buffer(self, q) -> None:
        self.__dict__["_bounded_queue"] = None if q is None else _BoundedQueue(self)

    @property
    def _socket(self):
        return self.__dict__.get("_guarded_socket")

    @_socket.setter
    def _socket(self, sock) -> None:
        self.__dict__["_guarded_socket"] = None if sock is None else _GuardedSocket(sock)
