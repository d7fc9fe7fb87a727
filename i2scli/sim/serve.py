"""`i2s sim`: run one virtual board until SIGINT/SIGTERM (or until its parent goes away)."""

from __future__ import annotations

import signal
import sys
import threading

from i2scli.sim.board import VirtualBoard


def serve(board: VirtualBoard, *, exit_with_stdin: bool = False) -> dict:
    """Start the board, print its device path on stdout, run until told to stop."""
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_signal)
    path = board.start()
    sys.stdout.write(path + "\n")
    sys.stdout.flush()
    if exit_with_stdin:
        # sim:// ports: the opener holds our stdin; when it goes, so does the board. Each
        # "sync" line it sends is answered once the board has taken what was written to the
        # pty (protocol_sim.Serial: around a baud change).
        def watch():
            try:
                for line in sys.stdin.buffer:
                    if line.strip() == b"sync":
                        board.sync_input()
                        sys.stdout.write("synced\n")
                        sys.stdout.flush()
            except (OSError, ValueError):
                pass
            stop.set()

        threading.Thread(target=watch, daemon=True).start()
    while not stop.is_set() and not board.wait(0.1):
        pass
    board.stop()
    sys.stderr.write(board.summary_line() + "\n")
    sys.stderr.flush()
    return board.summary()
