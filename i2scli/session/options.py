"""What the user asked of a stream: the bus, a duplex exchange, when a recording stops."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BusOptions:
    """What the user said about the bus; None = decide from the board and the file."""

    board: str | None = None
    id: int | None = None
    sck: object = None
    ws: object = None
    sd: object = None
    mck: object = None
    ibuf: int | None = None  # the I2S ring in bytes, as given (--ibuf)
    buffer_time: float | None = None  # or in seconds of the stream (--buffer-time); neither: by time (ring.py)
    latency: float | None = None  # or the latency asked for in all (--latency): the ring is what the reserve leaves
    latency_reserve: float = 0.0  # what the host holds ahead of the ring then (a live source's reserve)
    stream_seconds: float | None = None  # how long the stream is, when known: its ring is never longer
    io: str = "blocking"
    rate: int | None = None
    bits: int | None = None
    channels: int | None = None
    shift: int = 0
    timeout: float = 3.0
    probe: bool = True
    fresh_probe: bool = False  # measure the link even when a recent probe of this board is remembered
    compress: str = "auto"  # lossless wire coding: auto (when the link is the limit), on, off
    fit: bool = False  # play: make a stream that does not fit fit (audio/fit.py); rate/channels given are kept


@dataclass
class RecordStop:
    """When a recording ends, besides signals: a frame count, silence, a safety net."""

    frames: int | None = None  # exact number of frames to keep
    stop_on_silence: float | None = None  # seconds of silence that end it
    threshold_dbfs: float = -50.0
    wait_for_sound: bool = False
    max_frames: int | None = None


@dataclass
class DuplexOptions:
    order: str = "record-play"
    switch_delay: float = 0.001
    dir_pin: object = None
    dir_rx_level: int = 0
    sd_tx: object = None
    sd_rx: object = None
    lead_in: float = 0.0
    rx_discard: float = 0.0
    max_clock_gap: float = 0.010
    prefill: int | None = None
