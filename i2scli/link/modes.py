"""The stream modes as thin layers over one Stream: play (TX), record (RX) and the link probe.
Duplex, the largest, has its own room (duplex.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator

from i2scli import protocol as proto
from i2scli.link.errors import LinkError
from i2scli.link.launch import Launcher
from i2scli.link.stream import DEFAULT_TIMEOUT_MS, Stream
from i2scli.protocol import FrameType as T


def play(launcher: Launcher, cfg: dict, blocks: Iterable[bytes],
         progress: Callable[[int], None] | None = None) -> dict:
    """Stream audio bytes (bus format) to I2S TX; returns the agent's summary."""
    s = Stream(launcher, {**cfg, "mode": "tx"})
    payload = s.ready["payload"]
    pending = bytearray()
    sent = 0

    def send(frame: bytes) -> None:
        while not s.room(len(frame)):
            summary = s.poll()
            if summary is not None:
                s.summarise(summary)  # raises for the agent's watchdog
                raise LinkError(f"the agent stopped early ({summary.get('reason')})")
        s.send(frame)

    def frames(audio: bytes) -> Iterator[bytes]:
        """DATA frames for whole payloads of audio (the last one may be short)."""
        if s.coding is None:
            for i in range(0, len(audio), payload):
                yield s.enc.frame(T.DATA, audio[i:i + payload])
        else:  # coded together: a small frame at a time costs numpy's overhead, not the audio
            for coded, crc in s.coding.encode_many(audio, payload):
                yield s.enc.frame(T.DATA, coded, crc=crc)

    # a source that has nothing for a while (a pipe: empty blocks) must not look like a host
    # gone: the board's watchdog hears a KEEPALIVE (and underruns are counted meanwhile)
    keepalive = cfg.get("timeout_ms", DEFAULT_TIMEOUT_MS) / 4000
    last_sent = time.monotonic()
    for block in blocks:
        pending += block
        whole = len(pending) // payload * payload
        if whole:
            for frame in frames(bytes(pending[:whole])):
                send(frame)
                sent += payload
                if progress:
                    progress(sent)
            del pending[:whole]
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent >= keepalive and s.control(T.KEEPALIVE):
            last_sent = time.monotonic()
        if s.port.waiting():
            s.poll()
    if pending:
        for frame in frames(bytes(pending)):
            send(frame)
        sent += len(pending)
    while not s.room(s.overhead):
        s.poll()
    s.send(s.enc.frame(T.END))
    return s.summarise(s.await_summary())


def record(launcher: Launcher, cfg: dict, on_data: Callable[[bytes], None],
           stop: threading.Event | None = None) -> dict:
    """Stream I2S RX to on_data (bus format bytes) until cfg['frames'] or stop is set."""
    s = Stream(launcher, {**cfg, "mode": "rx"})
    keepalive = cfg.get("timeout_ms", DEFAULT_TIMEOUT_MS) / 4000
    next_keepalive = time.monotonic() + keepalive
    while True:
        summary = s.poll(on_data)
        if summary is not None:
            return s.summarise(summary)
        if stop is not None and stop.is_set():
            s.port.write(s.enc.frame(T.END))
            return s.summarise(s.await_summary(on_data))
        if time.monotonic() >= next_keepalive:
            s.control(T.KEEPALIVE)
            next_keepalive = time.monotonic() + keepalive


def probe(launcher: Launcher, up: int = 8192, down: int = 16384) -> dict:
    """Measure what the link carries each way, in bytes/s."""
    if not launcher.hello:
        launcher.launch()
    cfg = {"mode": "probe", "probe_up": up, "probe_down": down, "bits": 16, "format": "mono",
           "rate": 8000, "ibuf": 0, "payload": proto.tx_payload(launcher.hello.get("inbuf", 256), 1)}
    s = Stream(launcher, cfg)
    payload = s.ready["payload"]  # PROBE frames as long as the DATA frames a stream sends
    filler = bytes(payload)
    sent = 0
    t0 = time.monotonic()
    while sent < up:
        chunk = filler[: min(payload, up - sent)]
        frame = s.enc.frame(T.PROBE, chunk)
        while not s.room(len(frame)):
            s.poll()
        s.send(frame)
        sent += len(chunk)
    got, t_first, summary = 0, None, None
    t_prev, gaps = None, []  # (seconds since the last PROBE bytes came, bytes that came then)
    while summary is None:
        frames = s.next_frames()
        now, n = time.monotonic(), 0
        for f in frames:
            if f.type == T.PROBE:
                if t_first is None:
                    t_first = now
                got += len(f.payload)
                n += len(f.payload)
        if n:
            if t_prev is not None:
                gaps.append((now - t_prev, n))
            t_prev = now
        summary = s.collect(frames)
        if time.monotonic() - t0 > 30:
            raise LinkError("the link probe did not finish")
    t_last = time.monotonic()
    s.summarise(summary)
    up_rate = intake_rate(summary, min(payload, up))
    down_rate = got / max(t_last - (t_first or t_last), 1e-6)
    # the longest the link or the host stood still: up, what the slower half of the board's intake
    # lost against the faster; down, the longest wait for the board's bytes beyond their own time
    down_stall = max((dt - n / down_rate for dt, n in gaps), default=0.0)
    stall = max(0.0, intake_stall(summary, min(payload, up)), down_stall)
    return {"up": up_rate, "down": down_rate, "up_bytes": summary["up_bytes"], "down_bytes": got,
            "stall": round(stall, 6)}


def intake_rate(summary: dict, first: int) -> float:
    """The board's intake in bytes/s from a one-way probe's summary: timed on the board from
    its first PROBE frame's arrival (`first` bytes, not counted), the faster of its two halves
    when it timed them. One stall of the host, its scheduler or the bus during the probe is a
    moment the link was not asked to carry anything, not what it carries; the stream's own
    headroom and buffers are for those."""
    half_bytes, half_us = summary.get("half_bytes") or 0, summary.get("half_us") or 0
    if not half_bytes or not 0 < half_us < summary["up_us"]:
        return (summary["up_bytes"] - first) / max(summary["up_us"], 1) * 1e6
    return max((half_bytes - first) / half_us * 1e6,
               (summary["up_bytes"] - half_bytes) / (summary["up_us"] - half_us) * 1e6)


def intake_stall(summary: dict, first: int) -> float:
    """Seconds the slower half of a one-way probe's intake lost against the faster one: at
    least the longest the host, its scheduler or the link stood still while it ran."""
    half_bytes, half_us = summary.get("half_bytes") or 0, summary.get("half_us") or 0
    a, b = half_bytes - first, summary["up_bytes"] - half_bytes
    if a <= 0 or b <= 0 or not 0 < half_us < summary["up_us"]:
        return 0.0
    a_us, b_us = half_us, summary["up_us"] - half_us
    fast = max(a / a_us, b / b_us)
    return max(a_us - a / fast, b_us - b / fast) / 1e6


TWO_WAY_SECONDS = 0.5  # long enough for a loaded machine's hiccups to be part of the figure


def probe_both(launcher: Launcher, seconds: float = TWO_WAY_SECONDS) -> dict:
    """Measure what the link carries with both directions busy at once, in bytes/s each way:
    the host streams PROBE frames as credits allow for `seconds`, the agent answers each with
    one as long (the loop mode's load: stdin in, stdout out), then END. Each rate is taken
    after the first frame's arrival, so the burst that starts a stream does not count."""
    if not launcher.hello:
        launcher.launch()
    cfg = {"mode": "probe", "probe_both": 1, "bits": 16, "format": "mono",
           "rate": 8000, "ibuf": 0, "payload": proto.tx_payload(launcher.hello.get("inbuf", 256), 1)}
    s = Stream(launcher, cfg)
    payload = s.ready["payload"]  # PROBE frames as long as the DATA frames a stream sends
    filler = bytes(payload)
    size = s.enc.size(payload)
    sent, got, first, t_first, t_last, summary = 0, 0, 0, None, None, None
    t0 = time.monotonic()
    end_sent = False
    while summary is None:
        now = time.monotonic()
        if not end_sent and now - t0 >= seconds:
            end_sent = s.control(T.END)  # (when the credit allows; echoes keep arriving meanwhile)
        while not end_sent and s.room(size + s.overhead):  # room for END behind it
            s.send(s.enc.frame(T.PROBE, filler))
            sent += payload
        frames = s.next_frames()
        arrived = sum(len(f.payload) for f in frames if f.type == T.PROBE)
        if arrived:
            t_last = time.monotonic()
            if t_first is None:
                t_first, first = t_last, arrived
            got += arrived
        summary = s.collect(frames)
        if time.monotonic() - t0 > seconds + 30:
            raise LinkError("the two-way link probe did not finish")
    s.summarise(summary)
    if not summary.get("up_us") or t_first is None or t_last <= t_first:
        raise LinkError("the two-way link probe measured nothing")
    # the board timed from its first PROBE frame's arrival: the bytes after it
    board_up = (summary["up_bytes"] - payload) / summary["up_us"] * 1e6
    down_rate = (got - first) / (t_last - t_first)
    # Every frame in was answered with one as long, so on the host's clock the way in took its
    # bytes over the span the answers came back in. Where the board's clock is the host's (a
    # real board, to a few ppm) its own timing is the finer figure; where it runs slow against
    # the host's (the firmware board's emulator runs 0.1-0.7x real time when busy, the virtual
    # board's clock leaves out the host's waits) it reads a way in faster than the host can
    # use, by the clocks' ratio: measured up 77 kB/s on the emulator's clock against 7 kB/s
    # answered, a point no 1:1 load is at. Both ways are rates of the host's clock, as the
    # one-way probe's way back and the loop's stream are paced.
    host_up = (summary["up_bytes"] - payload) / (t_last - t_first)
    return {"up": min(board_up, host_up), "down": down_rate, "up_board_clock": board_up,
            "up_bytes": summary["up_bytes"], "down_bytes": got, "payload": payload,
            "seconds": round(t_last - t0, 3)}
