"""Full duplex on two buses over one Stream (START mode "loop"): the played audio streams in
under credit, the recording streams out, both at once, until the board has sent cfg['frames']
RX frames. The board's SUMMARY carries `sync`, where its two clocks and the first written frame
stood (docs/protocol.md), so a loopback's latency can be taken without the board's buffering."""

from __future__ import annotations

import threading
from collections.abc import Callable

from i2scli.link.launch import Launcher
from i2scli.link.stream import Stream
from i2scli.protocol import FrameType as T
from i2scli.protocol import frame_size


def loop(launcher: Launcher, cfg: dict, played: bytes, on_rx: Callable[[bytes], None],
         stop: threading.Event | None = None) -> dict:
    """Play `played` (bus format bytes) on cfg['tx'] while recording cfg['frames'] frames from
    cfg['rx']; on_rx gets the recording as it comes. Returns the agent's summary."""
    s = Stream(launcher, {**cfg, "mode": "loop"})
    payload = s.ready["payload"]
    # the DATA payloads (audio bytes, payload, crc): coded all at once when the agent codes
    if s.coding is None:
        bodies = [(len(c), c, None) for c in (played[i:i + payload] for i in range(0, len(played), payload))]
    else:
        bodies = [(min(payload, len(played) - i * payload), c, crc)
                  for i, (c, crc) in enumerate(s.coding.encode_many(played, payload))]
    k = 0
    end_sent = False
    while True:
        if stop is not None and stop.is_set() and not end_sent:
            end_sent = s.control(T.ABORT)
        # as much as the credit allows, always leaving room for END behind it (check before
        # encoding: a frame takes a sequence number)
        progressed = False
        while k < len(bodies) and not end_sent:
            _, body, crc = bodies[k]
            if not s.room(frame_size(len(body), s.enc.crc if crc is None else crc) + s.overhead):
                break
            s.send(s.enc.frame(T.DATA, body, crc=crc))
            k += 1
            progressed = True
        if k >= len(bodies) and not end_sent:
            end_sent = s.control(T.END)  # the board stops sooner when it has its frames
        if end_sent:  # nothing more to send: the rest of the recording, then the SUMMARY
            return s.summarise(s.await_summary(on_rx, timeout=s.timeout_s + 10))
        if not progressed or s.port.waiting():  # (a poll with nothing there waits a little)
            summary = s.poll(on_rx)
            if summary is not None:
                return s.summarise(summary)
