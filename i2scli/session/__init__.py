"""Streams as library calls: a pure plan from what the board and link said, carried out by play, record, duplex."""

from i2scli.session.config import (
    RING_WHY,
    buffer_time,
    bus_config,
    describe_config,
    describe_ring,
    duplex_config,
    stream_sizes,
)
from i2scli.session.config import load_coder as _load_coder
from i2scli.session.config import payload as _payload
from i2scli.session.config import preset as _preset
from i2scli.session.config import why_not_code as _why_not_code
from i2scli.session.duplexing import EchoSource, duplex, duplex_ratio, fit_duplex
from i2scli.session.options import BusOptions, DuplexOptions, RecordStop
from i2scli.session.plan import CODE_WHEN, FIT_MAX_RATIO, RX_RATIO_FLOOR, Plan
from i2scli.session.playing import PEEK_SECONDS, STREAM_PEEK_SECONDS, play
from i2scli.session.playing import fitted as _fitted
from i2scli.session.playing import lossless_fit as _lossless_fit
from i2scli.session.recording import StopRule, record
from i2scli.session.refusal import Refusal
from i2scli.session.report import Watch
from i2scli.session.report import board_counts as _board_counts
from i2scli.targets.boardinfo import MAX_TX_PAYLOAD, RX_PAYLOAD, board, info

__all__ = [
    "BusOptions", "DuplexOptions", "RecordStop", "Watch", "StopRule", "EchoSource", "Plan", "Refusal",
    "play", "record", "duplex", "fit_duplex", "duplex_ratio", "duplex_config", "bus_config", "stream_sizes",
    "describe_config", "describe_ring", "buffer_time", "RING_WHY", "PEEK_SECONDS", "STREAM_PEEK_SECONDS",
    "CODE_WHEN", "FIT_MAX_RATIO", "RX_RATIO_FLOOR", "RX_PAYLOAD", "MAX_TX_PAYLOAD", "board", "info",
    "_board_counts", "_fitted", "_load_coder", "_lossless_fit", "_payload", "_preset", "_why_not_code",
]
